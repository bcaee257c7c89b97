// N-API glue for tl::TrainSession: one Promise per step/eval, serialized with the model's other work.
#include <napi.h>

#include "../cpp/train/trainer.h"
#include "convert.h"
#include "data_wrap.h"
#include "model_wrap.h"
#include "workers.h"

namespace tlb {
namespace {

// On the worker: the result as JS will see it (host tensors, int32 labels).
void to_host(tl::EvalResult* r) {
  r->logits = host_tensor(r->logits);
  r->labels = host_tensor(r->labels.to(torch::kInt32));
}

// {lossSum, logits: {data, shape}, labels: Int32Array}
Napi::Object eval_to_js(Napi::Env e, const tl::EvalResult& r) {
  Napi::Object o = Napi::Object::New(e);
  o.Set("lossSum", r.loss_sum);
  o.Set("logits", tensor_to_js(e, r.logits));
  o.Set("labels", tensor_to_js(e, r.labels).Get("data"));
  return o;
}

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap>, public Guarded<TrainerWrap> {
  friend struct Guarded<TrainerWrap>;
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeTrainer",
                       {InstanceMethod("step", &TrainerWrap::template call<&TrainerWrap::Step>), InstanceMethod("eval", &TrainerWrap::template call<&TrainerWrap::Eval>),
                        InstanceMethod("setTrainFrom", &TrainerWrap::template call<&TrainerWrap::SetTrainFrom>),
                        InstanceMethod("saveOptimizer", &TrainerWrap::template call<&TrainerWrap::SaveOptimizer>),
                        InstanceMethod("loadOptimizer", &TrainerWrap::template call<&TrainerWrap::LoadOptimizer>),
                        InstanceMethod("init", &TrainerWrap::template call<&TrainerWrap::Init>),
                        InstanceMethod("joinProcessGroup", &TrainerWrap::template call<&TrainerWrap::JoinProcessGroup>),
                        InstanceMethod("allreduceSum", &TrainerWrap::template call<&TrainerWrap::AllreduceSum>),
                        InstanceMethod("broadcastModel", &TrainerWrap::template call<&TrainerWrap::BroadcastModel>),
                        InstanceMethod("averageBatchNormStats", &TrainerWrap::template call<&TrainerWrap::AverageBatchNormStats>),
                        InstanceMethod("cacheBatch", &TrainerWrap::template call<&TrainerWrap::CacheBatch>),
                        InstanceMethod("trainCachedEpoch", &TrainerWrap::template call<&TrainerWrap::TrainCachedEpoch>),
                        InstanceMethod("clearCache", &TrainerWrap::template call<&TrainerWrap::ClearCache>),
                        InstanceMethod("cacheEvalBatch", &TrainerWrap::template call<&TrainerWrap::CacheEvalBatch>),
                        InstanceMethod("evalCached", &TrainerWrap::template call<&TrainerWrap::EvalCached>),
                        InstanceMethod("setAdaptation", &TrainerWrap::template call<&TrainerWrap::SetAdaptation>)});
  }

  // new NativeTrainer(nativeModel, config)
  explicit TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
    Napi::Env env = info.Env();
    runner_ = ModelWrap::RunnerOf(info[0]);
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    guard(env, [&] {
      auto c = info[1].As<Napi::Object>();
      tl::TrainConfig cfg;
      cfg.optimizer = need_string(c, "optimizer");
      cfg.lr = need_number(c, "lr");
      cfg.backbone_lr = need_number(c, "backboneLr");
      cfg.weight_decay = need_number(c, "weightDecay");
      cfg.no_decay_norm_bias = need_bool(c, "noDecayNormBias");
      cfg.momentum = need_number(c, "momentum");
      cfg.nesterov = need_bool(c, "nesterov");
      cfg.dampening = need_number(c, "dampening");
      cfg.beta1 = need_number(c, "beta1");
      cfg.beta2 = need_number(c, "beta2");
      cfg.eps = need_number(c, "eps");
      cfg.alpha = need_number(c, "alpha");
      cfg.train_from = static_cast<size_t>(need_number(c, "trainFrom"));
      const auto bn = need_string(c, "freezeBatchNormStats");
      if (bn != "none" && bn != "frozen" && bn != "all") throw std::invalid_argument("option freezeBatchNormStats must be 'none', 'frozen' or 'all'");
      cfg.freeze_bn_stats = bn == "all" ? tl::TrainConfig::BnFreeze::All : bn == "frozen" ? tl::TrainConfig::BnFreeze::Frozen : tl::TrainConfig::BnFreeze::None;
      cfg.label_smoothing = need_number(c, "labelSmoothing");
      cfg.clip_grad_norm = need_number(c, "clipGradNorm");
      cfg.accumulate = static_cast<int>(need_number(c, "accumulate"));
      cfg.precision = tl::parse_precision(need_string(c, "precision"));
      if (!c.Get("lossScale").IsObject()) throw std::invalid_argument("option lossScale must be an object");
      auto ls = c.Get("lossScale").As<Napi::Object>();
      cfg.loss_scale.enabled = need_bool(ls, "enabled");
      cfg.loss_scale.init_scale = need_number(ls, "initScale");
      cfg.loss_scale.growth_factor = need_number(ls, "growthFactor");
      cfg.loss_scale.backoff_factor = need_number(ls, "backoffFactor");
      cfg.loss_scale.growth_interval = static_cast<int64_t>(need_number(ls, "growthInterval"));
      config_ = cfg;
      return 0;
    });
  }

 private:
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto batch = BatchWrap::FromValue(info[0]);
    if (!batch) throw Napi::TypeError::New(env, "step expects a batch from a DataLoader");
    // Learning rates travel with the step and are applied under the model's lock on the worker thread.
    const double head_lr = info[1].As<Napi::Number>().DoubleValue();
    const double backbone_lr = info[2].As<Napi::Number>().DoubleValue();
    // domain adaptation: step(batch, headLr, backboneLr, targetBatch, lambda)
    std::shared_ptr<tl::Batch> target;
    double lambda = 0;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      target = BatchWrap::FromValue(info[3]);
      if (!target) throw Napi::TypeError::New(env, "step's target must be a batch from a DataLoader");
      lambda = info[4].As<Napi::Number>().DoubleValue();
    }
    auto s = session();
    auto r = runner_;
    auto out = std::make_shared<tl::StepResult>();
    std::vector<Napi::Object> keep = {Value(), info[0].As<Napi::Object>()};
    if (target) keep.push_back(info[3].As<Napi::Object>());
    return PromiseWorker::Start(
        env, "tl.trainStep",
        [s, r, batch, target, lambda, out, head_lr, backbone_lr] {
          std::lock_guard<std::mutex> lock(r->mutex());
          s->set_lrs(head_lr, backbone_lr);
          *out = target ? s->step_adapt(*batch, *target, lambda) : s->step(*batch);
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("loss", out->loss);
          o.Set("correct", Napi::Number::New(e, static_cast<double>(out->correct)));
          o.Set("count", Napi::Number::New(e, static_cast<double>(out->count)));
          o.Set("stepped", out->stepped);
          o.Set("skipped", out->skipped);
          o.Set("lossScale", out->loss_scale);
          o.Set("adaptLoss", out->adapt_loss);
          o.Set("domainAccuracy", out->domain_accuracy);
          o.Set("buckets", out->buckets);
          o.Set("bucketsDuringBackward", out->buckets_during_backward);
          o.Set("allReduceWait", out->allreduce_wait_s);
          return o;
        },
        keep);
  }

  // setAdaptation({method, weight, hidden, kernels})
  Napi::Value SetAdaptation(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = info[0].As<Napi::Object>();
    tl::AdaptConfig cfg;
    cfg.method = need_string(o, "method");
    cfg.weight = need_number(o, "weight");
    cfg.hidden = static_cast<int64_t>(need_number(o, "hidden"));
    cfg.kernels = static_cast<int>(need_number(o, "kernels"));
    auto s = session();
    auto r = runner_;
    return PromiseWorker::Start(
        env, "tl.setAdaptation",
        [s, r, cfg] {
          std::lock_guard<std::mutex> lock(r->mutex());
          s->set_adaptation(cfg);
        },
        nullptr, {Value()});
  }

  Napi::Value Eval(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto batch = BatchWrap::FromValue(info[0]);
    if (!batch) throw Napi::TypeError::New(env, "eval expects a batch from a DataLoader");
    bool tta = info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    auto s = session();
    auto r = runner_;
    auto out = std::make_shared<tl::EvalResult>();
    return PromiseWorker::Start(
        env, "tl.evalStep",
        [s, r, batch, tta, out] {
          std::lock_guard<std::mutex> lock(r->mutex());
          *out = s->eval(*batch, tta);
          to_host(out.get());
        },
        [out](Napi::Env e) -> Napi::Value { return eval_to_js(e, *out); },
        {Value(), info[0].As<Napi::Object>()});
  }

  Napi::Value CacheBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto batch = BatchWrap::FromValue(info[0]);
    if (!batch) throw Napi::TypeError::New(env, "cacheBatch expects a batch from a DataLoader");
    int view = info[1].As<Napi::Number>().Int32Value();
    auto s = session();
    auto r = runner_;
    auto bytes = std::make_shared<int64_t>(0);
    return PromiseWorker::Start(
        env, "tl.cacheBatch",
        [s, r, batch, view, bytes] {
          std::lock_guard<std::mutex> lock(r->mutex());
          *bytes = s->cache_batch(*batch, view);
        },
        [bytes](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*bytes)); },
        {Value(), info[0].As<Napi::Object>()});
  }

  // trainCachedEpoch({epoch, datasetSize, batchSize, shuffle, dropLast, seed, views, lrs: [[head, backbone], ...]})
  Napi::Value TrainCachedEpoch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto o = info[0].As<Napi::Object>();
    uint64_t epoch = static_cast<uint64_t>(need_number(o, "epoch"));
    int64_t n = static_cast<int64_t>(need_number(o, "datasetSize"));
    int64_t bs = static_cast<int64_t>(need_number(o, "batchSize"));
    bool shuffle = need_bool(o, "shuffle"), drop_last = need_bool(o, "dropLast");
    uint64_t seed = static_cast<uint64_t>(need_number(o, "seed"));
    int views = static_cast<int>(need_number(o, "views"));
    std::vector<std::pair<double, double>> lrs;
    auto a = o.Get("lrs").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      auto pr = a.Get(i).As<Napi::Array>();
      lrs.emplace_back(pr.Get(0u).As<Napi::Number>().DoubleValue(), pr.Get(1u).As<Napi::Number>().DoubleValue());
    }
    auto s = session();
    auto r = runner_;
    auto out = std::make_shared<tl::StepResult>();
    return PromiseWorker::Start(
        env, "tl.trainCachedEpoch",
        [=] {
          std::lock_guard<std::mutex> lock(r->mutex());
          *out = s->train_cached_epoch(epoch, n, bs, shuffle, drop_last, seed, views, lrs);
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object res = Napi::Object::New(e);
          res.Set("loss", out->loss);
          res.Set("correct", Napi::Number::New(e, static_cast<double>(out->correct)));
          res.Set("count", Napi::Number::New(e, static_cast<double>(out->count)));
          res.Set("buckets", out->buckets);
          res.Set("bucketsDuringBackward", out->buckets_during_backward);
          res.Set("allReduceWait", out->allreduce_wait_s);
          return res;
        },
        {Value()});
  }

  Napi::Value CacheEvalBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto batch = BatchWrap::FromValue(info[0]);
    if (!batch) throw Napi::TypeError::New(env, "cacheEvalBatch expects a batch from a DataLoader");
    auto s = session();
    auto r = runner_;
    auto bytes = std::make_shared<int64_t>(0);
    return PromiseWorker::Start(
        env, "tl.cacheEvalBatch",
        [s, r, batch, bytes] {
          std::lock_guard<std::mutex> lock(r->mutex());
          *bytes = s->cache_eval_batch(*batch);
        },
        [bytes](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*bytes)); },
        {Value(), info[0].As<Napi::Object>()});
  }

  Napi::Value EvalCached(const Napi::CallbackInfo& info) {
    auto s = session();
    auto r = runner_;
    auto out = std::make_shared<tl::EvalResult>();
    auto idx = std::make_shared<std::vector<int64_t>>();
    return PromiseWorker::Start(
        info.Env(), "tl.evalCached",
        [s, r, out, idx] {
          std::lock_guard<std::mutex> lock(r->mutex());
          *out = s->eval_cached(idx.get());
          to_host(out.get());
        },
        [out, idx](Napi::Env e) -> Napi::Value {
          Napi::Object o = eval_to_js(e, *out);
          Napi::Array ind = Napi::Array::New(e, idx->size());
          for (size_t i = 0; i < idx->size(); ++i) ind.Set(static_cast<uint32_t>(i), Napi::Number::New(e, static_cast<double>((*idx)[i])));
          o.Set("indices", ind);
          return o;
        },
        {Value()});
  }

  // Runs fn(session) off the JS thread under the model's lock; resolves with the trainable parameter count.
  Napi::Value WithSession(const Napi::CallbackInfo& info, const char* name, std::function<void(tl::TrainSession&)> fn) {
    auto s = session();
    auto r = runner_;
    auto count = std::make_shared<int64_t>(0);
    return PromiseWorker::Start(
        info.Env(), name,
        [s, r, fn, count] {
          std::lock_guard<std::mutex> lock(r->mutex());
          fn(*s);
          *count = s->trainable_parameters();
        },
        [count](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*count)); }, {Value()});
  }

  // init(): builds the session (freezing, optimizer) on a worker under the model's lock, like every other job.
  Napi::Value Init(const Napi::CallbackInfo& info) {
    if (session_ || building_) throw std::logic_error("NativeTrainer.init() runs once");
    building_ = true;
    auto r = runner_;
    auto cfg = config_;
    auto made = std::make_shared<std::shared_ptr<tl::TrainSession>>();
    return PromiseWorker::Start(
        info.Env(), "tl.trainerInit",
        [r, cfg, made] {
          std::lock_guard<std::mutex> lock(r->mutex());
          *made = std::make_shared<tl::TrainSession>(r, cfg);
        },
        [this, made](Napi::Env e) -> Napi::Value {
          session_ = *made;  // the wrapper is kept alive by the worker's reference to it
          return Napi::Number::New(e, static_cast<double>(session_->trainable_parameters()));
        },
        {Value()});
  }
  // joinProcessGroup({rank, worldSize, masterAddr, masterPort, timeoutMs, bucketBytes, backend, overlap}): the
  // rendezvous on a worker (without the model's lock: it waits for the other ranks), then rank 0's parameters and
  // buffers under it. The backend is chosen for the model's device ('auto': NCCL for a CUDA model when built in).
  Napi::Value JoinProcessGroup(const Napi::CallbackInfo& info) {
    auto s = session();
    auto r = runner_;
    if (!info[0].IsObject()) throw std::invalid_argument("joinProcessGroup expects an options object");
    auto o = info[0].As<Napi::Object>();
    const tl::DistConfig cfg = to_dist_config(o, "joinProcessGroup", r->device().str());
    const auto bucket = static_cast<int64_t>(need_number(o, "bucketBytes"));
    const bool overlap = need_bool(o, "overlap");
    return PromiseWorker::Start(
        info.Env(), "tl.joinProcessGroup",
        [s, r, cfg, bucket, overlap] {
          auto pg = std::make_shared<tl::ProcessGroup>(cfg);
          std::lock_guard<std::mutex> lock(r->mutex());
          s->set_process_group(pg, bucket, overlap);
        },
        nullptr, {Value()});
  }
  // allreduceSum(values: number[]) -> Promise<number[]>: sums over the ranks (metrics), in step order.
  Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
    auto s = session();
    auto r = runner_;
    if (!info[0].IsArray()) throw std::invalid_argument("allreduceSum expects an array of numbers");
    auto a = info[0].As<Napi::Array>();
    auto values = std::make_shared<std::vector<double>>();
    for (uint32_t i = 0; i < a.Length(); ++i) values->push_back(a.Get(i).As<Napi::Number>().DoubleValue());
    return PromiseWorker::Start(
        info.Env(), "tl.allreduceSum",
        [s, r, values] {
          std::lock_guard<std::mutex> lock(r->mutex());
          if (!s->process_group()) throw std::logic_error("allreduceSum without a process group");
          *values = s->process_group()->allreduce_sum(*values);
        },
        [values](Napi::Env e) -> Napi::Value {
          auto out = Napi::Array::New(e, values->size());
          for (size_t i = 0; i < values->size(); ++i) out.Set(static_cast<uint32_t>(i), (*values)[i]);
          return out;
        },
        {Value()});
  }
  Napi::Value BroadcastModel(const Napi::CallbackInfo& info) {
    const int root = info[0].As<Napi::Number>().Int32Value();
    return WithSession(info, "tl.broadcastModel", [root](tl::TrainSession& s) { s.broadcast_model(root); });
  }
  Napi::Value AverageBatchNormStats(const Napi::CallbackInfo& info) {
    return WithSession(info, "tl.averageBatchNormStats", [](tl::TrainSession& s) { s.average_batchnorm_stats(); });
  }
  Napi::Value ClearCache(const Napi::CallbackInfo& info) {
    return WithSession(info, "tl.clearCache", [](tl::TrainSession& s) { s.clear_cache(); });
  }
  Napi::Value SetTrainFrom(const Napi::CallbackInfo& info) {
    const auto stage = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
    return WithSession(info, "tl.setTrainFrom", [stage](tl::TrainSession& s) { s.set_train_from(stage); });
  }

  // Runs fn(session, path) off the JS thread under the model's lock; resolves with undefined.
  Napi::Value WithPath(const Napi::CallbackInfo& info, const char* name, void (*fn)(tl::TrainSession&, const std::string&)) {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto s = session();
    auto r = runner_;
    return PromiseWorker::Start(
        info.Env(), name,
        [s, r, path, fn] {
          std::lock_guard<std::mutex> lock(r->mutex());
          fn(*s, path);
        },
        nullptr, {Value()});
  }
  Napi::Value SaveOptimizer(const Napi::CallbackInfo& info) {
    return WithPath(info, "tl.saveOptimizer", [](tl::TrainSession& s, const std::string& p) { s.save_optimizer(p); });
  }
  Napi::Value LoadOptimizer(const Napi::CallbackInfo& info) {
    return WithPath(info, "tl.loadOptimizer", [](tl::TrainSession& s, const std::string& p) { s.load_optimizer(p); });
  }

  std::shared_ptr<tl::TrainSession> session() const {
    if (!session_) throw std::logic_error("NativeTrainer used before init() resolved");
    return session_;
  }

  std::shared_ptr<tl::ModelRunner> runner_;
  tl::TrainConfig config_;
  bool building_ = false;
  std::shared_ptr<tl::TrainSession> session_;
  Napi::ObjectReference model_ref_;
};

}  // namespace

void InitTrainer(Napi::Env env, Napi::Object exports) { exports.Set("NativeTrainer", TrainerWrap::Init(env)); }

}  // namespace tlb
