// A Promise-returning AsyncWorker: `execute` runs on a libuv thread, `resolve` builds the result on the JS thread.
#pragma once
#include <napi.h>
#include <functional>
#include <vector>

#include "js_errors.h"

namespace tlb {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using ExecuteFn = std::function<void()>;
  using ResolveFn = std::function<Napi::Value(Napi::Env)>;

  // `keep_alive`: JS objects (wrapped models, buffers) referenced until the worker settles.
  static Napi::Promise Start(Napi::Env env, const char* name, ExecuteFn execute, ResolveFn resolve,
                             std::vector<Napi::Object> keep_alive = {});

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  PromiseWorker(Napi::Env env, const char* name, ExecuteFn execute, ResolveFn resolve);
  Napi::Promise::Deferred deferred_;
  ExecuteFn execute_;
  ResolveFn resolve_;
  ErrorInfo error_;
  bool failed_ = false;
  std::vector<Napi::ObjectReference> refs_;
};

}  // namespace tlb
