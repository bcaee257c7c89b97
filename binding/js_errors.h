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
  } catch (const Napi::Error& e) {
    // node-addon-api's own argument errors ("A string was expected") carry no code: they are wrong-typed options
    Napi::Object v = e.Value();
    if (!v.IsEmpty() && !v.Has("code")) v.Set("code", Napi::String::New(env, "ERR_INVALID_OPTION"));
    throw;
  } catch (...) {
    throw make_error(env, classify_current_exception());
  }
}

// Every method the addon exposes goes through one of these two, so no C++ exception reaches N-API (where it would
// terminate the process): each becomes a JS error with its code.
//   InstanceMethod("name", &Guarded<T>::template call<&T::Name>)   (T derives from Guarded<T>)
//   Napi::Function::New(env, guarded<Fn>)
template <typename T>
struct Guarded {
  template <Napi::Value (T::*M)(const Napi::CallbackInfo&)>
  Napi::Value call(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return (static_cast<T*>(this)->*M)(info); });
  }
};

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return F(info); });
}

// Per-addon-instance state (one per Node environment: the main thread and each worker_thread), never process
// globals: a constructor reference made in one environment is invalid in another.
struct AddonData {
  Napi::FunctionReference model_ctor;
  Napi::FunctionReference batch_ctor;
};
inline AddonData& addon_data(Napi::Env env) {
  auto* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData(d);  // deleted by node-addon-api when the environment exits
  }
  return *d;
}

}  // namespace tlb
