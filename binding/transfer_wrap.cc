// N-API glue for cpp/transfer: a feature bank per model (embeddings of a dataset), the assessment figures and
// the linear probe written into the model's head. Serialized with the model's other work by its mutex.
#include <napi.h>

#include "../cpp/device.h"
#include "../cpp/transfer/feature_bank.h"
#include "../cpp/transfer/probe.h"
#include "convert.h"
#include "data_wrap.h"
#include "model_wrap.h"
#include "workers.h"

namespace tlb {
namespace {

// {l2Grid, folds, maxIter, seed, maxCvSamples}: every field required.
tl::ProbeConfig to_probe_config(const Napi::Object& o) {
  tl::ProbeConfig c;
  auto grid = o.Get("l2Grid");
  if (!grid.IsArray()) throw std::invalid_argument("l2Grid must be an array of numbers");
  auto a = grid.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) c.l2_grid.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
  c.folds = static_cast<int>(need_number(o, "folds"));
  c.max_iter = static_cast<int>(need_number(o, "maxIter"));
  c.seed = static_cast<uint64_t>(need_number(o, "seed"));
  c.max_cv_samples = static_cast<int64_t>(need_number(o, "maxCvSamples"));
  return c;
}

struct Assessment {
  double knn = 0, linear = 0, l2 = 0, logme = 0, bn_shift = -1;
  int64_t bn_layers = 0, count = 0;
  std::vector<int64_t> class_counts;
};

class FeatureBankWrap : public Napi::ObjectWrap<FeatureBankWrap>, public Guarded<FeatureBankWrap> {
  friend struct Guarded<FeatureBankWrap>;

 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeFeatureBank",
                       {InstanceMethod("add", &FeatureBankWrap::template call<&FeatureBankWrap::Add>),
                        InstanceMethod("assess", &FeatureBankWrap::template call<&FeatureBankWrap::Assess>),
                        InstanceMethod("fitHead", &FeatureBankWrap::template call<&FeatureBankWrap::FitHead>),
                        InstanceMethod("fitPrototypes", &FeatureBankWrap::template call<&FeatureBankWrap::FitPrototypes>),
                        InstanceMethod("size", &FeatureBankWrap::template call<&FeatureBankWrap::Size>)});
  }

  // new NativeFeatureBank(nativeModel)
  explicit FeatureBankWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FeatureBankWrap>(info) {
    runner_ = ModelWrap::RunnerOf(info[0]);
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  }

 private:
  // add(batch, precision, bnSamples) -> Promise<number of samples held>
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto batch = BatchWrap::FromValue(info[0]);
    if (!batch) throw Napi::TypeError::New(env, "add expects a batch from a DataLoader");
    auto precision = tl::parse_precision(need_string(info[1], "precision"));
    auto bn_samples = static_cast<int64_t>(info[2].As<Napi::Number>().Int64Value());
    auto r = runner_;
    auto bank = bank_;
    return PromiseWorker::Start(
        env, "tl.featureBank.add",
        [r, bank, batch, precision, bn_samples] {
          std::lock_guard<std::mutex> lock(r->mutex());
          bank->add(*r, *batch, precision, bn_samples);
        },
        [bank](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(bank->size())); },
        {Value(), model_ref_.Value()});
  }

  // assess({numClasses, k, probe: {...}}) -> Promise<{knn, linear, l2, logme, bnShift, bnLayers, count, classCounts}>
  Napi::Value Assess(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = info[0].As<Napi::Object>();
    const int64_t classes = static_cast<int64_t>(need_number(o, "numClasses"));
    const int k = static_cast<int>(need_number(o, "k"));
    auto cfg = to_probe_config(o.Get("probe").As<Napi::Object>());
    auto bank = bank_;
    auto r = runner_;
    auto out = std::make_shared<Assessment>();
    return PromiseWorker::Start(
        env, "tl.assess",
        [r, bank, classes, k, cfg, out] {
          tl::apply_threads();
          auto x = bank->features();
          auto y = bank->labels().to(x.device());
          out->count = bank->size();
          auto counts = torch::bincount(y.cpu(), {}, classes);
          for (int64_t c = 0; c < classes; ++c) out->class_counts.push_back(counts[c].item<int64_t>());
          out->knn = tl::knn_accuracy(x, y, classes, k, cfg.folds, cfg.seed);
          auto probe = tl::fit_linear_probe(x, y, classes, cfg);
          out->linear = probe.cv_accuracy;
          out->l2 = probe.l2;
          out->logme = tl::logme(x, y, classes);
          out->bn_shift = bank->bn_shift();
          out->bn_layers = bank->bn_layers();
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("knn", out->knn);
          o.Set("linear", out->linear);
          o.Set("l2", out->l2);
          o.Set("logme", out->logme);
          o.Set("bnShift", out->bn_shift < 0 ? e.Null() : Napi::Number::New(e, out->bn_shift));
          o.Set("bnLayers", static_cast<double>(out->bn_layers));
          o.Set("count", static_cast<double>(out->count));
          Napi::Array counts = Napi::Array::New(e, out->class_counts.size());
          for (size_t i = 0; i < out->class_counts.size(); ++i)
            counts.Set(static_cast<uint32_t>(i), static_cast<double>(out->class_counts[i]));
          o.Set("classCounts", counts);
          return o;
        },
        {Value(), model_ref_.Value()});
  }

  // fitHead({numClasses, probe: {...}}) -> Promise<{l2, cvAccuracy, trainAccuracy, trainLoss}>: the probe becomes the head.
  Napi::Value FitHead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = info[0].As<Napi::Object>();
    const int64_t classes = static_cast<int64_t>(need_number(o, "numClasses"));
    auto cfg = to_probe_config(o.Get("probe").As<Napi::Object>());
    auto bank = bank_;
    auto r = runner_;
    auto out = std::make_shared<tl::LinearProbe>();
    return PromiseWorker::Start(
        env, "tl.fitHead",
        [r, bank, classes, cfg, out] {
          tl::apply_threads();
          auto x = bank->features();
          *out = tl::fit_linear_probe(x, bank->labels().to(x.device()), classes, cfg);
          std::lock_guard<std::mutex> lock(r->mutex());
          tl::apply_linear_probe(*r->module(), *out);
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("l2", out->l2);
          o.Set("cvAccuracy", out->cv_accuracy);
          o.Set("trainAccuracy", out->train_accuracy);
          o.Set("trainLoss", out->train_loss);
          return o;
        },
        {Value(), model_ref_.Value()});
  }

  // fitPrototypes({numClasses, scale, base: null | {data: Float32Array, shape: [C, D]}})
  //   -> Promise<{scale, looAccuracy, looSamples, fitted}>: the prototypes become the (linear, bias-free) head.
  Napi::Value FitPrototypes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw std::invalid_argument("fitPrototypes expects an options object");
    auto o = info[0].As<Napi::Object>();
    const int64_t classes = static_cast<int64_t>(need_number(o, "numClasses"));
    const double scale = need_number(o, "scale");
    torch::Tensor base;
    auto b = o.Get("base");
    if (!b.IsNull()) {
      if (!b.IsObject()) throw std::invalid_argument("base must be null or {data, shape}");
      auto bo = b.As<Napi::Object>();
      base = copy_float32(bo.Get("data"), to_shape(bo.Get("shape"), "base.shape"), "base.data");
    }
    auto bank = bank_;
    auto r = runner_;
    auto out = std::make_shared<tl::PrototypeFit>();
    return PromiseWorker::Start(
        env, "tl.fitPrototypes",
        [r, bank, classes, scale, base, out] {
          tl::apply_threads();
          auto x = bank->features();
          *out = tl::fit_prototypes(x, bank->labels().to(x.device()), classes, base, scale);
          tl::LinearProbe head;
          head.weight = out->weight;
          head.bias = torch::zeros({classes}, out->weight.options());
          std::lock_guard<std::mutex> lock(r->mutex());
          tl::apply_linear_probe(*r->module(), head);
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("scale", out->scale);
          o.Set("looAccuracy", out->loo_accuracy < 0 ? e.Null() : Napi::Number::New(e, out->loo_accuracy));
          o.Set("looSamples", static_cast<double>(out->loo_samples));
          Napi::Array f = Napi::Array::New(e, out->fitted.size());
          for (size_t i = 0; i < out->fitted.size(); ++i) f.Set(static_cast<uint32_t>(i), static_cast<double>(out->fitted[i]));
          o.Set("fitted", f);
          return o;
        },
        {Value(), model_ref_.Value()});
  }

  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(bank_->size()));
  }

  std::shared_ptr<tl::ModelRunner> runner_;
  Napi::ObjectReference model_ref_;
  std::shared_ptr<tl::FeatureBank> bank_ = std::make_shared<tl::FeatureBank>();
};

}  // namespace

void InitTransfer(Napi::Env env, Napi::Object exports) { exports.Set("NativeFeatureBank", FeatureBankWrap::Init(env)); }

}  // namespace tlb
