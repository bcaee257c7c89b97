// Maps C++ exceptions to JS errors carrying a stable `code` (the TS layer turns codes into classes).
#pragma once
#include <napi.h>
#include <exception>
#include <string>

namespace tlb {

struct ErrorInfo {
  std::string code;
  std::string message;
};

// Classifies the exception currently being handled (call from inside a catch block).
ErrorInfo classify_current_exception();
Napi::Error make_error(Napi::Env env, const ErrorInfo& info);
// Runs fn on the JS thread, converting C++ exceptions to thrown JS errors.
template <typename F>
auto guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw make_error(env, classify_current_exception());
  }
}

}  // namespace tlb
