// N-API glue for the data pipeline: folder scans, the native Loader and its Batches, single-sample transforms.
#pragma once
#include <napi.h>
#include <memory>

#include "../cpp/data/loader.h"
#include "js_errors.h"

namespace tlb {

// {paths: string[], labels?: number[], buffers?: (Buffer|null)[]} -> samples (buffers copied).
std::vector<tl::Sample> to_samples(const Napi::Value& v);
tl::DecodeOptions to_decode_options(const Napi::Value& v);

class BatchWrap : public Napi::ObjectWrap<BatchWrap>, public Guarded<BatchWrap> {
  friend struct Guarded<BatchWrap>;
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<tl::Batch> batch);
  static std::shared_ptr<tl::Batch> FromValue(const Napi::Value& v);  // nullptr when not a batch
  explicit BatchWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Images(const Napi::CallbackInfo& info);
  Napi::Value Labels(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  std::shared_ptr<tl::Batch> batch_;
};

class LoaderWrap : public Napi::ObjectWrap<LoaderWrap>, public Guarded<LoaderWrap> {
  friend struct Guarded<LoaderWrap>;
 public:
  static Napi::Function Init(Napi::Env env);
  explicit LoaderWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value CacheBytes(const Napi::CallbackInfo& info);
  Napi::Value SetDeviceAugment(const Napi::CallbackInfo& info);
  Napi::Value SetShard(const Napi::CallbackInfo& info);
  std::shared_ptr<tl::Loader> loader_;
  std::shared_ptr<tl::DecodedCache> cache_;
};

void InitData(Napi::Env env, Napi::Object exports);

}  // namespace tlb
