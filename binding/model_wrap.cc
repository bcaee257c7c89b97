#include "model_wrap.h"

#include "../cpp/runtime/predict.h"
#include "../cpp/device.h"
#include "../cpp/export/graph.h"
#include "../cpp/transfer/grad_cam.h"
#include "convert.h"
#include "data_wrap.h"
#include "workers.h"

namespace tlb {

namespace {

Napi::Object report_to_js(Napi::Env env, const tl::LoadReport& r, const std::map<std::string, std::string>& meta) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("missing", strings_to_js(env, r.missing));
  o.Set("unexpected", strings_to_js(env, r.unexpected));
  o.Set("mismatched", strings_to_js(env, r.mismatched));
  o.Set("skippedHead", strings_to_js(env, r.skipped_head));
  o.Set("metadata", string_map_to_js(env, meta));
  return o;
}
}  // namespace

Napi::Function ModelWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeModel",
                                 {
                                     InstanceMethod("forward", &ModelWrap::template call<&ModelWrap::Forward>),
                                     InstanceMethod("loadWeights", &ModelWrap::template call<&ModelWrap::LoadWeights>),
                                     InstanceMethod("save", &ModelWrap::template call<&ModelWrap::Save>),
                                     InstanceMethod("to", &ModelWrap::template call<&ModelWrap::To>),
                                     InstanceMethod("sgdStep", &ModelWrap::template call<&ModelWrap::SgdStep>),
                                     InstanceMethod("stateDict", &ModelWrap::template call<&ModelWrap::StateDict>),
                                     InstanceMethod("parameterCount", &ModelWrap::template call<&ModelWrap::ParameterCount>),
                                     InstanceMethod("dispose", &ModelWrap::template call<&ModelWrap::Dispose>),
                                     InstanceMethod("info", &ModelWrap::template call<&ModelWrap::Info>),
                                     InstanceMethod("predict", &ModelWrap::template call<&ModelWrap::Predict>),
                                     InstanceMethod("setHead", &ModelWrap::template call<&ModelWrap::SetHead>),
                                     InstanceMethod("explain", &ModelWrap::template call<&ModelWrap::Explain>),
                                     InstanceMethod("exportGraph", &ModelWrap::template call<&ModelWrap::ExportGraph>),
                                 });
  addon_data(env).model_ctor = Napi::Persistent(f);
  return f;
}

Napi::Object ModelWrap::NewInstance(Napi::Env env, std::shared_ptr<tl::ModelRunner> runner) {
  auto* holder = new std::shared_ptr<tl::ModelRunner>(std::move(runner));
  auto ext = Napi::External<std::shared_ptr<tl::ModelRunner>>::New(
      env, holder, [](Napi::Env, std::shared_ptr<tl::ModelRunner>* p) { delete p; });
  return addon_data(env).model_ctor.New({ext});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "NativeModel is created by createModel()");
  runner_ = *info[0].As<Napi::External<std::shared_ptr<tl::ModelRunner>>>().Data();
  total_params_ = runner_->parameter_count(false);
}

std::shared_ptr<tl::ModelRunner> ModelWrap::RunnerOf(const Napi::Value& v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(v.Env()).model_ctor.Value()))
    throw Napi::TypeError::New(v.Env(), "expected a NativeModel");
  return Napi::ObjectWrap<ModelWrap>::Unwrap(v.As<Napi::Object>())->runner(v.Env());
}

std::shared_ptr<tl::ModelRunner> ModelWrap::runner(Napi::Env env) {
  if (!runner_) {
    auto e = Napi::Error::New(env, "model has been disposed");
    e.Set("code", "ERR_DISPOSED");
    throw e;
  }
  return runner_;
}

Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  auto input = copy_float32(info[0], to_shape(info[1], "shape"), "input");
  Napi::Object opts = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  auto precision = tl::parse_precision(need_string(opts, "precision"));
  bool embed = need_bool(opts, "embed");
  auto out = std::make_shared<torch::Tensor>();
  return PromiseWorker::Start(
      env, "tl.forward",
      [r, input, precision, embed, out] {
        std::lock_guard<std::mutex> lock(r->mutex());
        *out = host_tensor(r->forward(input, precision, embed));
      },
      [out](Napi::Env e) -> Napi::Value { return tensor_to_js(e, *out); }, {Value()});
}

Napi::Value ModelWrap::LoadWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  std::string path = info[0].As<Napi::String>().Utf8Value();
  bool allow_head = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  auto report = std::make_shared<tl::LoadReport>();
  auto meta = std::make_shared<std::map<std::string, std::string>>();
  return PromiseWorker::Start(
      env, "tl.loadWeights",
      [r, path, allow_head, report, meta] {
        std::lock_guard<std::mutex> lock(r->mutex());
        *report = r->load_weights(path, allow_head, meta.get());
      },
      [report, meta](Napi::Env e) -> Napi::Value { return report_to_js(e, *report, *meta); }, {Value()});
}

Napi::Value ModelWrap::Save(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto meta = to_string_map(info[1]);
  return PromiseWorker::Start(
      env, "tl.save",
      [r, path, meta] {
        std::lock_guard<std::mutex> lock(r->mutex());
        r->save(path, meta);
      },
      nullptr, {Value()});
}

Napi::Value ModelWrap::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  std::string device = info[0].As<Napi::String>().Utf8Value();
  return PromiseWorker::Start(
      env, "tl.to",
      [r, device] {
        std::lock_guard<std::mutex> lock(r->mutex());
        r->to(device);
      },
      [r](Napi::Env e) -> Napi::Value { return Napi::String::New(e, r->device_string()); }, {Value()});
}

Napi::Value ModelWrap::SgdStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  auto shape = to_shape(info[1], "shape");
  auto input = copy_float32(info[0], shape, "input");
  auto labels = copy_int64_labels(info[2], shape.empty() ? 0 : shape[0], "labels");
  double lr = info[3].As<Napi::Number>().DoubleValue();
  const auto precision = tl::parse_precision(need_string(info[4], "precision"));
  auto loss = std::make_shared<double>(0);
  return PromiseWorker::Start(
      env, "tl.sgdStep",
      [r, input, labels, lr, loss, precision] {
        std::lock_guard<std::mutex> lock(r->mutex());
        *loss = r->sgd_step(input, labels, lr, precision);
      },
      [loss](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *loss); }, {Value()});
}

Napi::Value ModelWrap::StateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  auto sd = std::make_shared<tl::StateDict>();
  return PromiseWorker::Start(
      env, "tl.stateDict",
      [r, sd] {
        std::lock_guard<std::mutex> lock(r->mutex());
        for (const auto& kv : r->state_dict().tensors)
          sd->tensors.insert(kv.key(), host_tensor(kv.value()));
      },
      [sd](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        for (const auto& kv : sd->tensors) o.Set(kv.key(), tensor_to_js(e, kv.value()));
        return o;
      },
      {Value()});
}

// predict(samples{paths, buffers}, specJson, decode, {topk, precision, batchSize, workers, prefetch, tta})
Napi::Value ModelWrap::Predict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  auto samples = to_samples(info[0]);
  auto spec = tl::parse_transform_spec(info[1].As<Napi::String>().Utf8Value());
  auto decode = to_decode_options(info[2]);
  auto o = info[3].As<Napi::Object>();
  int64_t topk = static_cast<int64_t>(need_number(o, "topk"));
  auto precision = tl::parse_precision(need_string(o, "precision"));
  tl::LoaderConfig loader;
  loader.batch_size = static_cast<int64_t>(need_number(o, "batchSize"));
  loader.workers = static_cast<int>(need_number(o, "workers"));
  loader.prefetch = static_cast<int>(need_number(o, "prefetch"));
  loader.world_size = 1;  // every image, in order
  bool tta = need_bool(o, "tta");
  auto ds = std::make_shared<const tl::ImageDataset>(std::move(samples), std::move(spec), decode);
  auto out = std::make_shared<std::vector<tl::Prediction>>();
  return PromiseWorker::Start(
      env, "tl.predict",
      [r, ds, topk, precision, loader, tta, out] {
        std::lock_guard<std::mutex> lock(r->mutex());
        *out = tl::predict(*r, ds, topk, precision, loader, tta);
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Array a = Napi::Array::New(e, out->size());
        for (size_t i = 0; i < out->size(); ++i) {
          Napi::Object p = Napi::Object::New(e);
          auto idx = Napi::Int32Array::New(e, (*out)[i].index.size());
          auto prob = Napi::Float32Array::New(e, (*out)[i].probability.size());
          for (size_t j = 0; j < idx.ElementLength(); ++j) {
            idx[j] = static_cast<int32_t>((*out)[i].index[j]);
            prob[j] = (*out)[i].probability[j];
          }
          p.Set("index", idx);
          p.Set("probability", prob);
          a.Set(static_cast<uint32_t>(i), p);
        }
        return a;
      },
      {Value()});
}

Napi::Value ModelWrap::SetHead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  std::string head = need_string(info[0], "head");
  return PromiseWorker::Start(
      env, "tl.setHead",
      [r, head] {
        std::lock_guard<std::mutex> lock(r->mutex());
        r->set_head(head);
      },
      [this, r](Napi::Env e) -> Napi::Value {
        total_params_ = r->parameter_count(false);
        return e.Undefined();
      },
      {Value()});
}

// explain(input, shape, classIndex: number[]) -> Promise<{heatmap, probabilities, classIndex}>
Napi::Value ModelWrap::Explain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  auto input = copy_float32(info[0], to_shape(info[1], "shape"), "input");
  std::vector<int64_t> classes;
  auto a = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) classes.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  auto out = std::make_shared<tl::GradCamResult>();
  return PromiseWorker::Start(
      env, "tl.explain",
      [r, input, classes, out] {
        std::lock_guard<std::mutex> lock(r->mutex());
        tl::apply_threads();
        *out = tl::grad_cam(*r->module(), r->prepare(input), classes);
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("heatmap", tensor_to_js(e, out->heatmap));
        o.Set("probabilities", tensor_to_js(e, out->probabilities));
        Napi::Array c = Napi::Array::New(e, out->class_index.size());
        for (size_t i = 0; i < out->class_index.size(); ++i) c.Set(static_cast<uint32_t>(i), static_cast<double>(out->class_index[i]));
        o.Set("classIndex", c);
        return o;
      },
      {Value()});
}

// exportGraph(inputName) -> Promise<{output, nodes: [{op, name, inputs, outputs, ints, intAttrs, floatAttrs}],
//                                   initializers: [{name, data: Float32Array, shape}]}>
Napi::Value ModelWrap::ExportGraph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  std::string input = need_string(info[0], "inputName");
  auto g = std::make_shared<tl::GraphBuilder>(input);
  auto out = std::make_shared<std::string>();
  return PromiseWorker::Start(
      env, "tl.exportGraph",
      [r, g, input, out] {
        std::lock_guard<std::mutex> lock(r->mutex());
        tl::apply_threads();
        torch::NoGradGuard no_grad;
        r->module()->eval();
        *out = r->module()->describe(*g, input);
        for (auto& kv : g->initializers) kv.second = host_tensor(kv.second);
      },
      [g, out](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("output", *out);
        Napi::Array nodes = Napi::Array::New(e, g->nodes.size());
        for (size_t i = 0; i < g->nodes.size(); ++i) {
          const auto& n = g->nodes[i];
          Napi::Object x = Napi::Object::New(e);
          x.Set("op", n.op);
          x.Set("name", n.name);
          x.Set("inputs", strings_to_js(e, n.inputs));
          x.Set("outputs", strings_to_js(e, n.outputs));
          Napi::Object ints = Napi::Object::New(e);
          for (const auto& kv : n.ints) {
            Napi::Array a = Napi::Array::New(e, kv.second.size());
            for (size_t j = 0; j < kv.second.size(); ++j) a.Set(static_cast<uint32_t>(j), static_cast<double>(kv.second[j]));
            ints.Set(kv.first, a);
          }
          x.Set("ints", ints);
          Napi::Object ia = Napi::Object::New(e);
          for (const auto& kv : n.int_attrs) ia.Set(kv.first, static_cast<double>(kv.second));
          x.Set("intAttrs", ia);
          Napi::Object fa = Napi::Object::New(e);
          for (const auto& kv : n.float_attrs) fa.Set(kv.first, kv.second);
          x.Set("floatAttrs", fa);
          nodes.Set(static_cast<uint32_t>(i), x);
        }
        o.Set("nodes", nodes);
        Napi::Array inits = Napi::Array::New(e, g->initializers.size());
        for (size_t i = 0; i < g->initializers.size(); ++i) {
          Napi::Object t = tensor_to_js(e, g->initializers[i].second);
          t.Set("name", g->initializers[i].first);
          inits.Set(static_cast<uint32_t>(i), t);
        }
        o.Set("initializers", inits);
        return o;
      },
      {Value()});
}

Napi::Value ModelWrap::ParameterCount(const Napi::CallbackInfo& info) {
  runner(info.Env());
  return Napi::Number::New(info.Env(), static_cast<double>(total_params_));
}

Napi::Value ModelWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = runner(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("arch", r->config().arch);
  o.Set("numClasses", Napi::Number::New(env, static_cast<double>(r->config().num_classes)));
  o.Set("device", r->device_string());
  o.Set("channelsLast", r->config().channels_last);
  o.Set("fuse", r->config().fuse);
  o.Set("featureDim", Napi::Number::New(env, static_cast<double>(r->module()->feature_dim())));
  o.Set("headPrefix", r->module()->head_prefix());
  o.Set("head", r->config().head);
  o.Set("stages", strings_to_js(env, r->module()->stages()));
  return o;
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  runner_.reset();  // running workers hold their own reference and finish safely
  return info.Env().Undefined();
}

}  // namespace tlb
