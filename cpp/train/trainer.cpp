#include "train/trainer.h"

#include "device.h"
#include "errors.h"
#include "io/checkpoint.h"
#include "torch_compat.h"

namespace tl {
namespace {

bool is_norm_or_bias(const std::string& name, const torch::Tensor& p) { return p.dim() <= 1; }

const std::string kAdapterPrefix = "adapter.";
bool is_adapter(const std::string& name) { return name.rfind(kAdapterPrefix, 0) == 0; }

compat::OptimizerStateKey key_of(const torch::Tensor& p) { return compat::optimizer_state_key(p); }

}  // namespace

TrainSession::TrainSession(std::shared_ptr<ModelRunner> runner, TrainConfig cfg)
    : runner_(std::move(runner)), cfg_(cfg), scaler_(cfg.loss_scale) {
  if (cfg_.accumulate < 1) throw std::invalid_argument("option accumulate must be >= 1");
  apply_freezing();
  build_optimizer();
}

void TrainSession::apply_freezing() {
  auto model = runner_->module();
  trainable_.clear();
  trainable_names_.clear();
  for (auto& kv : model->named_parameters()) {
    bool train = model->stage_of(kv.key()) >= cfg_.train_from;
    kv.value().set_requires_grad(train);
    if (train) {
      trainable_.push_back(kv.value());
      trainable_names_.push_back(kv.key());
    }
  }
  // the domain adapter's parameters train with the head (and their optimizer state is saved with the model's)
  if (adapter_) {
    for (auto& kv : adapter_->named_parameters()) {
      trainable_.push_back(kv.value());
      trainable_names_.push_back(kAdapterPrefix + kv.key());
    }
  }
}

void TrainSession::build_optimizer() {
  auto model = runner_->module();
  const size_t head = model->stages().size() - 1;
  // groups: head/decay, head/no-decay, backbone/decay, backbone/no-decay
  std::vector<torch::Tensor> groups[4];
  for (size_t i = 0; i < trainable_.size(); ++i) {
    bool is_head = is_adapter(trainable_names_[i]) || model->stage_of(trainable_names_[i]) >= head;
    bool no_decay = cfg_.no_decay_norm_bias && is_norm_or_bias(trainable_names_[i], trainable_[i]);
    groups[(is_head ? 0 : 2) + (no_decay ? 1 : 0)].push_back(trainable_[i]);
  }
  std::vector<torch::optim::OptimizerParamGroup> pg;
  group_is_head_.clear();
  for (int g = 0; g < 4; ++g) {
    if (groups[g].empty()) continue;
    const double lr = g < 2 ? cfg_.lr : cfg_.backbone_lr;
    const double wd = (g % 2) ? 0.0 : cfg_.weight_decay;
    std::unique_ptr<torch::optim::OptimizerOptions> o;
    if (cfg_.optimizer == "sgd")
      o = std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr).momentum(cfg_.momentum).nesterov(cfg_.nesterov).dampening(cfg_.dampening).weight_decay(wd));
    else if (cfg_.optimizer == "adam")
      o = std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(lr).betas({cfg_.beta1, cfg_.beta2}).eps(cfg_.eps).weight_decay(wd));
    else if (cfg_.optimizer == "adamw")
      o = std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr).betas({cfg_.beta1, cfg_.beta2}).eps(cfg_.eps).weight_decay(wd));
    else if (cfg_.optimizer == "rmsprop")
      o = std::make_unique<torch::optim::RMSpropOptions>(torch::optim::RMSpropOptions(lr).alpha(cfg_.alpha).eps(cfg_.eps).momentum(cfg_.momentum).weight_decay(wd));
    else
      throw std::invalid_argument("optimizer must be sgd, adam, adamw or rmsprop, got '" + cfg_.optimizer + "'");
    pg.emplace_back(groups[g], std::move(o));
    group_is_head_.push_back(g < 2);
  }
  if (pg.empty()) throw std::invalid_argument("no trainable parameters: every stage is frozen");
  if (cfg_.optimizer == "sgd") opt_ = std::make_unique<torch::optim::SGD>(pg, torch::optim::SGDOptions(cfg_.lr));
  else if (cfg_.optimizer == "adam") opt_ = std::make_unique<torch::optim::Adam>(pg, torch::optim::AdamOptions(cfg_.lr));
  else if (cfg_.optimizer == "adamw") opt_ = std::make_unique<torch::optim::AdamW>(pg, torch::optim::AdamWOptions(cfg_.lr));
  else opt_ = std::make_unique<torch::optim::RMSprop>(pg, torch::optim::RMSpropOptions(cfg_.lr));
}

void TrainSession::set_lrs(double head, double backbone) {
  auto& groups = opt_->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(group_is_head_[g] ? head : backbone);
  cfg_.lr = head;
  cfg_.backbone_lr = backbone;
}

void TrainSession::set_train_from(size_t stage) {
  if (stage == cfg_.train_from) return;
  cfg_.train_from = stage;
  clear_cache();  // what the cache holds was computed by stages that now train
  rebuild_optimizer();
}

void TrainSession::rebuild_optimizer() {
  // Keep per-parameter optimizer state across the rebuild (state is keyed by tensor identity).
  auto saved = std::move(opt_->state());
  apply_freezing();
  build_optimizer();
  for (auto& kv : saved) opt_->state()[kv.first] = std::move(kv.second);
}

void TrainSession::set_adaptation(const AdaptConfig& cfg) {
  adapter_ = DomainAdapter(cfg, runner_->module()->feature_dim());
  adapter_->to(runner_->device());
  rebuild_optimizer();
}

StepResult TrainSession::step_adapt(const Batch& source, const Batch& target, double lambda) {
  apply_threads();
  if (!adapter_) throw std::invalid_argument("step_adapt needs set_adaptation first");
  if (source.images.size(0) == 0) return StepResult{};
  if (source.labels.dim() != 1) throw std::invalid_argument("domain adaptation does not support MixUp/CutMix batches");
  auto xt = runner_->prepare(target.materialize(runner_->device()));
  return run_step(runner_->prepare(source.materialize(runner_->device())), to_device(source.labels, runner_->device()), false,
                  xt.size(0) ? &xt : nullptr, lambda);
}

void TrainSession::set_train_mode() {
  auto model = runner_->module();
  model->train();
  if (cfg_.freeze_bn_stats == TrainConfig::BnFreeze::None) return;
  const bool all = cfg_.freeze_bn_stats == TrainConfig::BnFreeze::All;
  for (auto& kv : model->named_modules("", false)) {
    if (auto* bn = kv.value()->as<torch::nn::BatchNorm2d>()) {
      if (all || model->stage_of(kv.key() + ".weight") < cfg_.train_from) bn->eval();
    }
  }
}

void TrainSession::set_process_group(std::shared_ptr<ProcessGroup> pg, int64_t bucket_bytes, bool overlap) {
  pg_ = std::move(pg);
  bucket_bytes_ = bucket_bytes;
  overlap_ = overlap;
  reducer_.reset();
  broadcast_model(0);
}

void TrainSession::broadcast_model(int root) {
  if (!pg_) return;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> all;
  auto model = runner_->module();
  for (auto& p : model->parameters()) all.push_back(p);
  for (auto& b : model->buffers()) all.push_back(b);
  pg_->broadcast(all, root, bucket_bytes_);
}

void TrainSession::average_batchnorm_stats() {
  if (!pg_) return;
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> stats;
  for (auto& m : runner_->module()->modules(false))
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) stats.insert(stats.end(), {bn->running_mean, bn->running_var});
  pg_->allreduce_mean(stats, bucket_bytes_);
}

int64_t TrainSession::trainable_parameters() const {
  int64_t n = 0;
  for (size_t i = 0; i < trainable_.size(); ++i)
    if (!is_adapter(trainable_names_[i])) n += trainable_[i].numel();
  return n;
}

StepResult TrainSession::step(const Batch& batch) {
  apply_threads();
  if (batch.images.size(0) == 0) return StepResult{};
  return run_step(runner_->prepare(batch.materialize(runner_->device())), to_device(batch.labels, runner_->device()), false);
}

StepResult TrainSession::run_step(const torch::Tensor& x, const torch::Tensor& y, bool cached, const torch::Tensor* target,
                                  double lambda) {
  StepResult r;
  r.count = x.size(0);
  auto model = runner_->module();
  set_train_mode();
  torch::Tensor logits, adapt;
  {
    AutocastScope ac(runner_->device(), cfg_.precision);
    if (target) {
      // one backbone pass over source and target (shared BatchNorm statistics); the head sees the source part
      const int64_t n = x.size(0);
      auto feats = model->backbone(torch::cat({x, *target}));
      auto pooled = feats.dim() == 4 ? torch::flatten(torch::adaptive_avg_pool2d(feats, {1, 1}), 1) : feats;
      logits = model->head(feats.narrow(0, 0, n));
      adapt = adapter_->loss(pooled.narrow(0, 0, n), pooled.narrow(0, n, pooled.size(0) - n), lambda);
    } else {
      logits = cached ? model->suffix(x, cache_stage_) : model->forward(x);
    }
  }
  logits = logits.to(torch::kFloat32);
  auto opts = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg_.label_smoothing);
  auto loss = torch::nn::functional::cross_entropy(logits, y, opts);
  auto total = adapt.defined() ? loss + adapt : loss;
  const bool sync = pg_ && pending_ + 1 >= cfg_.accumulate;  // this backward ends in an optimizer step
  if (sync) {
    // DDP's first bucket: 1 MiB, so the head's gradients are on the wire while the stages below are differentiated
    if (!reducer_ || !reducer_->serves(trainable_))
      reducer_ = std::make_unique<GradReducer>(pg_, trainable_, bucket_bytes_, std::min<int64_t>(bucket_bytes_, int64_t{1} << 20), overlap_);
    reducer_->arm(/*accumulated=*/pending_ > 0);
  }
  scaler_.scale_loss(total / cfg_.accumulate).backward();
  if (adapt.defined()) {
    r.adapt_loss = adapt.item<double>();
    r.domain_accuracy = adapter_->domain_accuracy();
  }
  if (++pending_ >= cfg_.accumulate) {
    if (sync) {  // DDP: the mean gradient over the ranks (accumulated batches are reduced once, as no_sync)
      const auto st = reducer_->finish();
      r.buckets = st.buckets;
      r.buckets_during_backward = st.started_during_backward;
      r.allreduce_wait_s = st.wait_seconds;
    }
    const bool finite = scaler_.unscale(trainable_);  // clipping sees the true gradients
    if (finite) {
      if (cfg_.clip_grad_norm > 0) torch::nn::utils::clip_grad_norm_(trainable_, cfg_.clip_grad_norm);
      opt_->step();
      r.stepped = true;
    } else {
      r.skipped = true;
    }
    scaler_.update(finite);
    opt_->zero_grad();
    pending_ = 0;
  }
  r.loss_scale = scaler_.scale();
  torch::NoGradGuard ng;
  auto hard = y.dim() == 2 ? y.argmax(1) : y;
  r.correct = logits.argmax(1).eq(hard).sum().item<int64_t>();
  r.loss = loss.item<double>();
  return r;
}

void TrainSession::check_cache_stage() {
  auto model = runner_->module();
  const size_t last = model->stages().size() - 1;
  if (cfg_.train_from == 0)
    throw std::invalid_argument("the frozen-prefix cache needs frozen stages (trainFrom above " + model->stages()[0] + ")");
  // a stage's output only depends on the image when its BatchNorm layers use their running statistics
  if (cfg_.train_from < last && cfg_.freeze_bn_stats == TrainConfig::BnFreeze::None)
    throw std::invalid_argument("the frozen-prefix cache needs the frozen stages' BatchNorm statistics frozen (freezeBatchNormStats true or 'all')");
  if (cache_.empty() && eval_cache_.empty()) cache_stage_ = cfg_.train_from;
  else if (cache_stage_ != cfg_.train_from)
    throw std::invalid_argument("the feature cache holds the outputs before " + model->stages()[cache_stage_] + "; clear it before caching at " +
                                model->stages()[cfg_.train_from]);
}

int64_t TrainSession::cache_batch(const Batch& batch, int view) {
  apply_threads();
  auto model = runner_->module();
  check_cache_stage();
  if (batch.labels.dim() != 1) throw std::invalid_argument("the feature cache does not support MixUp/CutMix batches");
  if (static_cast<int>(cache_.size()) <= view) cache_.resize(view + 1);
  if (batch.images.size(0) == 0) return cache_bytes_;
  torch::Tensor feats;
  {
    c10::InferenceMode guard;
    set_train_mode();  // frozen BatchNorm is in eval mode: the same features a training step computes
    AutocastScope ac(runner_->device(), cfg_.precision);
    feats = model->prefix(runner_->prepare(batch.materialize(runner_->device())), cache_stage_);
  }
  // Leave inference mode: cached tensors are inputs of autograd graphs later.
  feats = feats.clone();
  for (size_t i = 0; i < batch.indices.size(); ++i) {
    auto f = feats[static_cast<int64_t>(i)];
    cache_[view][batch.indices[i]] = f;
    cache_labels_[batch.indices[i]] = batch.labels[static_cast<int64_t>(i)].item<int64_t>();
    cache_bytes_ += f.numel() * f.element_size();
  }
  return cache_bytes_;
}

StepResult TrainSession::train_cached_epoch(uint64_t epoch, int64_t dataset_size, int64_t batch_size, bool shuffle, bool drop_last,
                                            uint64_t seed, int views, const std::vector<std::pair<double, double>>& lrs) {
  apply_threads();
  if (cache_.empty()) throw std::invalid_argument("the feature cache is empty");
  const auto& view = cache_[epoch % static_cast<uint64_t>(std::max(1, views)) % cache_.size()];
  auto order = shard_order(epoch_order(dataset_size, shuffle, seed, epoch), pg_ ? pg_->rank() : 0, pg_ ? pg_->world_size() : 1, drop_last);
  StepResult total;
  size_t step = 0;
  for (size_t begin = 0; begin < order.size(); begin += static_cast<size_t>(batch_size)) {
    size_t end = std::min(order.size(), begin + static_cast<size_t>(batch_size));
    if (drop_last && end - begin < static_cast<size_t>(batch_size)) break;
    std::vector<torch::Tensor> xs;
    std::vector<int64_t> ys;
    for (size_t k = begin; k < end; ++k) {
      auto it = view.find(order[k]);
      if (it == view.end()) continue;  // sample skipped while caching
      xs.push_back(it->second);
      ys.push_back(cache_labels_.at(order[k]));
    }
    if (xs.empty()) continue;
    if (step < lrs.size()) set_lrs(lrs[step].first, lrs[step].second);
    // in the model's memory format, as the uncached path sees them: libtorch 2 draws dropout masks in memory order
    auto r = run_step(runner_->prepare(torch::stack(xs)), torch::tensor(ys, torch::kInt64).to(runner_->device()), true);
    total.loss += r.loss * r.count;
    total.correct += r.correct;
    total.count += r.count;
    total.buckets += r.buckets;
    total.buckets_during_backward += r.buckets_during_backward;
    total.allreduce_wait_s += r.allreduce_wait_s;
    ++step;
  }
  if (total.count) total.loss /= total.count;
  return total;
}

int64_t TrainSession::cache_eval_batch(const Batch& batch) {
  apply_threads();
  auto model = runner_->module();
  check_cache_stage();
  torch::Tensor feats;
  {
    c10::InferenceMode guard;
    model->eval();
    AutocastScope ac(runner_->device(), cfg_.precision);
    feats = model->prefix(runner_->prepare(batch.materialize(runner_->device())), cache_stage_);
  }
  Batch meta;
  meta.labels = batch.labels.dim() == 2 ? batch.labels.argmax(1) : batch.labels;
  meta.indices = batch.indices;
  cache_bytes_ += feats.numel() * feats.element_size();
  eval_cache_.emplace_back(feats, std::move(meta));
  return cache_bytes_;
}

EvalResult TrainSession::eval_cached(std::vector<int64_t>* indices) {
  apply_threads();
  c10::InferenceMode guard;
  auto model = runner_->module();
  model->eval();
  std::vector<torch::Tensor> logits, labels;
  for (auto& entry : eval_cache_) {
    AutocastScope ac(runner_->device(), cfg_.precision);
    logits.push_back(model->suffix(entry.first, cache_stage_).to(torch::kFloat32));
    labels.push_back(entry.second.labels);
    indices->insert(indices->end(), entry.second.indices.begin(), entry.second.indices.end());
  }
  EvalResult r;
  if (logits.empty()) throw std::invalid_argument("the validation feature cache is empty");
  auto all = torch::cat(logits);
  auto y = torch::cat(labels).to(all.device());
  r.loss_sum = torch::nn::functional::cross_entropy(all, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>();
  r.logits = all.to(torch::kCPU).contiguous();
  r.labels = y.to(torch::kCPU);
  return r;
}

void TrainSession::clear_cache() {
  eval_cache_.clear();
  cache_.clear();
  cache_labels_.clear();
  cache_bytes_ = 0;
}

EvalResult TrainSession::eval(const Batch& batch, bool hflip_tta) {
  apply_threads();
  c10::InferenceMode guard;
  auto model = runner_->module();
  model->eval();
  EvalResult r;
  if (batch.images.size(0) == 0) {
    r.logits = torch::empty({0, runner_->config().num_classes});
    r.labels = torch::empty({0}, torch::kInt64);
    return r;
  }
  auto x = runner_->prepare(batch.materialize(runner_->device()));
  torch::Tensor logits;
  {
    AutocastScope ac(runner_->device(), cfg_.precision);
    logits = model->forward(x).to(torch::kFloat32);
    if (hflip_tta) logits = (logits + model->forward(x.flip({3})).to(torch::kFloat32)) / 2;
  }
  auto y = batch.labels.dim() == 2 ? batch.labels.argmax(1) : batch.labels;
  r.loss_sum = torch::nn::functional::cross_entropy(logits, y.to(logits.device()),
                                                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
  r.logits = logits.to(torch::kCPU).contiguous();
  r.labels = y.to(torch::kCPU);
  return r;
}

void TrainSession::save_optimizer(const std::string& path) const {
  StateDict sd;
  sd.metadata["optimizer"] = cfg_.optimizer;
  auto& state = opt_->state();
  for (size_t i = 0; i < trainable_.size(); ++i) {
    auto it = state.find(key_of(trainable_[i]));
    if (it == state.end()) continue;
    const std::string& n = trainable_names_[i];
    auto* base = it->second.get();
    if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(base)) {
      sd.tensors.insert(n + ".exp_avg", a->exp_avg());
      sd.tensors.insert(n + ".exp_avg_sq", a->exp_avg_sq());
      sd.tensors.insert(n + ".step", torch::tensor({a->step()}, torch::kInt64));
    } else if (auto* w = dynamic_cast<torch::optim::AdamWParamState*>(base)) {
      sd.tensors.insert(n + ".exp_avg", w->exp_avg());
      sd.tensors.insert(n + ".exp_avg_sq", w->exp_avg_sq());
      sd.tensors.insert(n + ".step", torch::tensor({w->step()}, torch::kInt64));
    } else if (auto* s = dynamic_cast<torch::optim::SGDParamState*>(base)) {
      if (s->momentum_buffer().defined()) sd.tensors.insert(n + ".momentum_buffer", s->momentum_buffer());
    } else if (auto* r = dynamic_cast<torch::optim::RMSpropParamState*>(base)) {
      sd.tensors.insert(n + ".square_avg", r->square_avg());
      sd.tensors.insert(n + ".step", torch::tensor({r->step()}, torch::kInt64));
      if (r->momentum_buffer().defined()) sd.tensors.insert(n + ".momentum_buffer", r->momentum_buffer());
    }
  }
  if (adapter_)  // the domain classifier's weights live here, not in the model's file
    for (const auto& kv : adapter_->named_parameters()) sd.tensors.insert(kAdapterPrefix + kv.key() + ".param", kv.value().detach());
  if (sd.tensors.is_empty()) sd.tensors.insert("__empty__", torch::zeros({0}));
  write_safetensors(path, sd);
}

void TrainSession::load_optimizer(const std::string& path) {
  StateDict sd = read_safetensors(path);
  auto it = sd.metadata.find("optimizer");
  if (it == sd.metadata.end() || it->second != cfg_.optimizer)
    throw CheckpointError(path + ": optimizer state is for '" + (it == sd.metadata.end() ? "?" : it->second) + "', not '" + cfg_.optimizer + "'");
  auto& state = opt_->state();
  torch::NoGradGuard ng;
  auto get = [&](const std::string& k) -> torch::Tensor {
    const torch::Tensor* t = sd.tensors.find(k);
    return t ? t->to(runner_->device()).clone() : torch::Tensor();
  };
  if (adapter_)
    for (auto& kv : adapter_->named_parameters()) {
      auto t = get(kAdapterPrefix + kv.key() + ".param");
      if (t.defined() && t.sizes() == kv.value().sizes()) kv.value().copy_(t);
    }
  for (size_t i = 0; i < trainable_.size(); ++i) {
    const std::string& n = trainable_names_[i];
    const auto& p = trainable_[i];
    if (cfg_.optimizer == "adam" || cfg_.optimizer == "adamw") {
      auto ea = get(n + ".exp_avg");
      if (!ea.defined()) continue;
      auto st = cfg_.optimizer == "adam" ? std::unique_ptr<torch::optim::OptimizerParamState>(new torch::optim::AdamParamState())
                                         : std::unique_ptr<torch::optim::OptimizerParamState>(new torch::optim::AdamWParamState());
      if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(st.get())) {
        a->exp_avg(ea);
        a->exp_avg_sq(get(n + ".exp_avg_sq"));
        a->step(get(n + ".step").item<int64_t>());
      } else if (auto* w = dynamic_cast<torch::optim::AdamWParamState*>(st.get())) {
        w->exp_avg(ea);
        w->exp_avg_sq(get(n + ".exp_avg_sq"));
        w->step(get(n + ".step").item<int64_t>());
      }
      state[key_of(p)] = std::move(st);
    } else if (cfg_.optimizer == "sgd") {
      auto mb = get(n + ".momentum_buffer");
      if (!mb.defined()) continue;
      auto st = std::make_unique<torch::optim::SGDParamState>();
      st->momentum_buffer(mb);
      state[key_of(p)] = std::move(st);
    } else {
      auto sq = get(n + ".square_avg");
      if (!sq.defined()) continue;
      auto st = std::make_unique<torch::optim::RMSpropParamState>();
      st->square_avg(sq);
      st->step(get(n + ".step").item<int64_t>());
      auto mb = get(n + ".momentum_buffer");
      if (mb.defined()) st->momentum_buffer(mb);
      state[key_of(p)] = std::move(st);
    }
  }
}

}  // namespace tl
