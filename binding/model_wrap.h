// ObjectWrap over tl::ModelRunner: every tensor-touching method returns a Promise run off the JS thread.
#pragma once
#include <napi.h>
#include <memory>

#include "../cpp/runtime/model_runner.h"
#include "js_errors.h"

namespace tlb {

class ModelWrap : public Napi::ObjectWrap<ModelWrap>, public Guarded<ModelWrap> {
  friend struct Guarded<ModelWrap>;
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<tl::ModelRunner> runner);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  // The runner behind a NativeModel object; throws a TypeError otherwise (or when disposed).
  static std::shared_ptr<tl::ModelRunner> RunnerOf(const Napi::Value& v);

 private:
  std::shared_ptr<tl::ModelRunner> runner(Napi::Env env);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value LoadWeights(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value SgdStep(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value SetHead(const Napi::CallbackInfo& info);
  Napi::Value Explain(const Napi::CallbackInfo& info);
  Napi::Value ExportGraph(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  std::shared_ptr<tl::ModelRunner> runner_;
  int64_t total_params_ = 0;
};

}  // namespace tlb
