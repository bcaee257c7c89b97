#include "data_wrap.h"

#include "../cpp/runtime/predict.h"
#include "convert.h"
#include "workers.h"

namespace tlb {

namespace {

Napi::Array skipped_to_js(Napi::Env env, const std::vector<tl::Skipped>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("path", v[i].path);
    o.Set("reason", v[i].reason);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}
}  // namespace

std::vector<tl::Sample> to_samples(const Napi::Value& v) {
  if (!v.IsObject()) throw std::invalid_argument("samples must be an object");
  auto o = v.As<Napi::Object>();
  Napi::Value pv = o.Get("paths");
  if (!pv.IsArray()) throw std::invalid_argument("samples.paths must be an array");
  auto paths = pv.As<Napi::Array>();
  Napi::Value lv = o.Get("labels");
  Napi::Value bv = o.Get("buffers");
  std::vector<tl::Sample> out(paths.Length());
  for (uint32_t i = 0; i < paths.Length(); ++i) {
    out[i].path = paths.Get(i).As<Napi::String>().Utf8Value();
    if (lv.IsObject()) out[i].label = static_cast<int64_t>(lv.As<Napi::Object>().Get(i).As<Napi::Number>().Int64Value());
    if (bv.IsArray()) {
      Napi::Value b = bv.As<Napi::Array>().Get(i);
      if (b.IsBuffer()) {
        auto buf = b.As<Napi::Buffer<uint8_t>>();
        out[i].bytes = std::make_shared<std::vector<uint8_t>>(buf.Data(), buf.Data() + buf.Length());  // copied now
      }
    }
  }
  return out;
}

tl::DecodeOptions to_decode_options(const Napi::Value& v) {
  if (!v.IsObject()) throw std::invalid_argument("decode options must be an object");
  auto o = v.As<Napi::Object>();
  tl::DecodeOptions d;
  d.max_pixels = static_cast<int64_t>(need_number(o, "maxPixels"));
  d.min_short_side = static_cast<int64_t>(need_number(o, "fastDecodeMinSide"));
  d.strict = need_bool(o, "strict");
  return d;
}

// ---- Batch -------------------------------------------------------------------------------------------------------

Napi::Function BatchWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeBatch",
                                 {InstanceMethod("images", &BatchWrap::template call<&BatchWrap::Images>), InstanceMethod("labels", &BatchWrap::template call<&BatchWrap::Labels>),
                                  InstanceMethod("info", &BatchWrap::template call<&BatchWrap::Info>), InstanceMethod("release", &BatchWrap::template call<&BatchWrap::Release>)});
  addon_data(env).batch_ctor = Napi::Persistent(f);
  return f;
}

Napi::Object BatchWrap::NewInstance(Napi::Env env, std::shared_ptr<tl::Batch> batch) {
  auto* holder = new std::shared_ptr<tl::Batch>(std::move(batch));
  auto ext = Napi::External<std::shared_ptr<tl::Batch>>::New(env, holder, [](Napi::Env, std::shared_ptr<tl::Batch>* p) { delete p; });
  return addon_data(env).batch_ctor.New({ext});
}

std::shared_ptr<tl::Batch> BatchWrap::FromValue(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(v.Env()).batch_ctor.Value())) return nullptr;
  auto batch = Napi::ObjectWrap<BatchWrap>::Unwrap(v.As<Napi::Object>())->batch_;
  if (!batch->images.defined()) throw std::invalid_argument("this batch has been disposed");
  return batch;
}

BatchWrap::BatchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchWrap>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "NativeBatch is created by a loader");
  batch_ = *info[0].As<Napi::External<std::shared_ptr<tl::Batch>>>().Data();
}

Napi::Value BatchWrap::Images(const Napi::CallbackInfo& info) {
  if (!batch_->images.defined()) throw Napi::Error::New(info.Env(), "this batch has been disposed");
  return tensor_to_js(info.Env(), batch_->materialize(torch::kCPU));
}
Napi::Value BatchWrap::Labels(const Napi::CallbackInfo& info) {
  if (!batch_->labels.defined()) throw Napi::Error::New(info.Env(), "this batch has been disposed");
  // class indices as int32 (soft labels stay float32)
  return tensor_to_js(info.Env(), batch_->labels.dim() == 1 ? batch_->labels.to(torch::kInt32) : batch_->labels);
}
Napi::Value BatchWrap::Release(const Napi::CallbackInfo& info) {
  batch_->release();
  return info.Env().Undefined();
}
Napi::Value BatchWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Napi::Number::New(env, static_cast<double>(batch_->images.size(0))));
  Napi::Array idx = Napi::Array::New(env, batch_->indices.size());
  for (size_t i = 0; i < batch_->indices.size(); ++i) idx.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(batch_->indices[i])));
  o.Set("indices", idx);
  o.Set("skipped", skipped_to_js(env, batch_->skipped));
  o.Set("softLabels", batch_->labels.dim() == 2);
  return o;
}

// ---- Loader ------------------------------------------------------------------------------------------------------

Napi::Function LoaderWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeLoader",
                     {InstanceMethod("start", &LoaderWrap::template call<&LoaderWrap::Start>), InstanceMethod("next", &LoaderWrap::template call<&LoaderWrap::Next>),
                      InstanceMethod("stop", &LoaderWrap::template call<&LoaderWrap::Stop>), InstanceMethod("length", &LoaderWrap::template call<&LoaderWrap::Length>),
                      InstanceMethod("cacheBytes", &LoaderWrap::template call<&LoaderWrap::CacheBytes>),
                      InstanceMethod("setDeviceAugment", &LoaderWrap::template call<&LoaderWrap::SetDeviceAugment>),
                      InstanceMethod("setShard", &LoaderWrap::template call<&LoaderWrap::SetShard>)});
}

// new NativeLoader(samples, transformJson, decode, config)
LoaderWrap::LoaderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LoaderWrap>(info) {
  Napi::Env env = info.Env();
  guard(env, [&] {
    auto samples = to_samples(info[0]);
    auto spec = tl::parse_transform_spec(info[1].As<Napi::String>().Utf8Value());
    auto decode = to_decode_options(info[2]);
    auto c = info[3].As<Napi::Object>();
    tl::LoaderConfig cfg;
    cfg.batch_size = static_cast<int64_t>(need_number(c, "batchSize"));
    cfg.shuffle = need_bool(c, "shuffle");
    cfg.seed = static_cast<uint64_t>(need_number(c, "seed"));
    cfg.drop_last = need_bool(c, "dropLast");
    cfg.workers = static_cast<int>(need_number(c, "workers"));
    cfg.prefetch = static_cast<int>(need_number(c, "prefetch"));
    const auto on_error = need_string(c, "onError");
    if (on_error != "skip" && on_error != "throw") throw std::invalid_argument("option onError must be 'throw' or 'skip'");
    cfg.skip_errors = on_error == "skip";
    cfg.pin_memory = need_bool(c, "pinMemory");
    cfg.defer_augment = need_bool(c, "deviceAugment");
    cfg.rank = static_cast<int>(need_number(c, "rank"));
    cfg.world_size = static_cast<int>(need_number(c, "worldSize"));
    cfg.mix.mixup_alpha = need_number(c, "mixupAlpha");
    cfg.mix.cutmix_alpha = need_number(c, "cutmixAlpha");
    cfg.mix.mixup_p = need_number(c, "mixupP");
    cfg.mix.cutmix_p = need_number(c, "cutmixP");
    cfg.mix.num_classes = static_cast<int64_t>(need_number(c, "numClasses"));
    int64_t cache_bytes = static_cast<int64_t>(need_number(c, "cache"));
    if (cache_bytes > 0) cache_ = std::make_shared<tl::DecodedCache>(cache_bytes);
    auto ds = std::make_shared<const tl::ImageDataset>(std::move(samples), std::move(spec), decode);
    loader_ = std::make_shared<tl::Loader>(ds, cfg, cache_);
    return 0;
  });
}

// start and stop join the previous epoch's threads: on a worker, not the JS thread
Napi::Value LoaderWrap::Start(const Napi::CallbackInfo& info) {
  auto loader = loader_;
  const auto epoch = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  return PromiseWorker::Start(info.Env(), "tl.loader.start", [loader, epoch] { loader->start(epoch); }, nullptr, {Value()});
}

Napi::Value LoaderWrap::Next(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto loader = loader_;
  auto batch = std::make_shared<tl::Batch>();
  auto got = std::make_shared<bool>(false);
  return PromiseWorker::Start(
      env, "tl.loader.next", [loader, batch, got] { *got = loader->next(batch.get()); },
      [batch, got](Napi::Env e) -> Napi::Value { return *got ? Napi::Value(BatchWrap::NewInstance(e, batch)) : e.Null(); },
      {Value()});
}

Napi::Value LoaderWrap::Stop(const Napi::CallbackInfo& info) {
  auto loader = loader_;
  return PromiseWorker::Start(info.Env(), "tl.loader.stop", [loader] { loader->stop(); }, nullptr, {Value()});
}
// setShard(rank, worldSize, seed): between epochs only (the loader's TS side guarantees it)
Napi::Value LoaderWrap::SetShard(const Napi::CallbackInfo& info) {
  loader_->set_shard(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                     static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}
Napi::Value LoaderWrap::SetDeviceAugment(const Napi::CallbackInfo& info) {
  loader_->set_defer_augment(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}
Napi::Value LoaderWrap::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(loader_->num_batches()));
}
Napi::Value LoaderWrap::CacheBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cache_ ? static_cast<double>(cache_->bytes()) : 0.0);
}

// ---- functions ---------------------------------------------------------------------------------------------------

namespace {

Napi::Value ScanImageFolder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string root = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> exts;
  if (info[1].IsArray()) {
    auto a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) exts.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  } else {
    exts = tl::default_extensions();
  }
  auto scan = std::make_shared<tl::FolderScan>();
  return PromiseWorker::Start(
      env, "tl.scanImageFolder", [root, exts, scan] { *scan = tl::scan_image_folder(root, exts); },
      [scan](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("classes", strings_to_js(e, scan->classes));
        Napi::Array paths = Napi::Array::New(e, scan->samples.size());
        auto labels = Napi::Int32Array::New(e, scan->samples.size());
        for (size_t i = 0; i < scan->samples.size(); ++i) {
          paths.Set(static_cast<uint32_t>(i), scan->samples[i].path);
          labels[i] = static_cast<int32_t>(scan->samples[i].label);
        }
        o.Set("paths", paths);
        o.Set("labels", labels);
        o.Set("skipped", skipped_to_js(e, scan->skipped));
        return o;
      });
}

// transformImage(samples{paths, buffers}, specJson, seed, decode) -> {data, shape, dtype}
Napi::Value TransformImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto samples = to_samples(info[0]);
  if (samples.size() != 1) throw std::invalid_argument("transformImage takes one image");
  auto spec = tl::parse_transform_spec(info[1].As<Napi::String>().Utf8Value());
  uint64_t seed = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  auto decode = to_decode_options(info[3]);
  auto out = std::make_shared<torch::Tensor>();
  auto sample = samples[0];
  return PromiseWorker::Start(
      env, "tl.transformImage", [sample, spec, seed, decode, out] { *out = host_tensor(tl::transform_sample(sample, spec, seed, decode)); },
      [out](Napi::Env e) -> Napi::Value { return tensor_to_js(e, *out); });
}

// encodeJpeg(data Uint8Array [C*H*W planar], [C, H, W], quality) -> Promise<Buffer>
Napi::Value EncodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto arr = info[0].As<Napi::Uint8Array>();
  auto shape = info[1].As<Napi::Array>();
  if (shape.Length() != 3) throw std::invalid_argument("encodeJpeg expects a [C, H, W] shape");
  int64_t c = shape.Get(0u).As<Napi::Number>().Int64Value(), h = shape.Get(1u).As<Napi::Number>().Int64Value(),
          w = shape.Get(2u).As<Napi::Number>().Int64Value();
  if (c <= 0 || h <= 0 || w <= 0 || static_cast<size_t>(c * h * w) != arr.ElementLength())
    throw std::invalid_argument("encodeJpeg: data length does not match the shape");
  int quality = info[2].As<Napi::Number>().Int32Value();
  // Copy before going async: the JS buffer may be reused.
  auto img = torch::empty({c, h, w}, torch::kUInt8);
  std::memcpy(img.data_ptr<uint8_t>(), arr.Data(), arr.ElementLength());
  auto out = std::make_shared<std::vector<uint8_t>>();
  return PromiseWorker::Start(
      env, "tl.encodeJpeg", [img, quality, out] { *out = tl::encode_jpeg(img, quality); },
      [out](Napi::Env e) -> Napi::Value { return Napi::Buffer<uint8_t>::Copy(e, out->data(), out->size()); });
}

}  // namespace

void InitData(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeBatch", BatchWrap::Init(env));
  exports.Set("NativeLoader", LoaderWrap::Init(env));
  exports.Set("scanImageFolder", Napi::Function::New(env, guarded<ScanImageFolder>));
  exports.Set("transformImage", Napi::Function::New(env, guarded<TransformImage>));
  exports.Set("encodeJpeg", Napi::Function::New(env, guarded<EncodeJpeg>));
}

}  // namespace tlb
