#include "transfer/feature_bank.h"

#include "device.h"

namespace tl {
namespace {

std::vector<torch::nn::BatchNorm2dImpl*> batchnorms(torch::nn::Module& m) {
  std::vector<torch::nn::BatchNorm2dImpl*> out;
  for (auto& sub : m.modules(/*include_self=*/false))
    if (auto* bn = sub->as<torch::nn::BatchNorm2d>()) out.push_back(bn);
  return out;
}

}  // namespace

void FeatureBank::add(ModelRunner& runner, const Batch& batch, Precision precision, int64_t bn_samples) {
  apply_threads();
  if (batch.labels.dim() != 1) throw std::invalid_argument("embeddings need hard labels (no MixUp/CutMix batches)");
  const int64_t b = batch.images.size(0);
  if (b == 0) return;
  auto model = runner.module();
  auto x = runner.prepare(batch.materialize(runner.device()));
  {
    c10::InferenceMode guard;
    model->eval();
    AutocastScope autocast(runner.device(), precision);
    chunks_.push_back(model->embed(x).to(torch::kFloat).clone());
  }
  labels_.push_back(batch.labels.to(torch::kLong).cpu().clone());
  indices_.insert(indices_.end(), batch.indices.begin(), batch.indices.end());
  size_ += b;
  auto bns = batchnorms(*model);
  if (bns.empty() || bn_seen_ >= bn_samples) return;
  // BatchNorm in train mode with momentum None keeps the cumulative average of the batch statistics: the layers'
  // own buffers are swapped for ours for one forward pass, then put back with their momentum.
  if (bn_mean_.empty()) {
    for (auto* bn : bns) {
      ref_mean_.push_back(bn->running_mean.detach().to(torch::kDouble).clone());
      ref_var_.push_back(bn->running_var.detach().to(torch::kDouble).clone());
      bn_mean_.push_back(torch::zeros_like(bn->running_mean));
      bn_var_.push_back(torch::ones_like(bn->running_var));
    }
  }
  struct Saved {
    torch::Tensor mean, var, count;
    c10::optional<double> momentum;
  };
  std::vector<Saved> saved;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < bns.size(); ++i) {
    auto* bn = bns[i];
    saved.push_back({bn->running_mean.clone(), bn->running_var.clone(), bn->num_batches_tracked.clone(), bn->options.momentum()});
    bn->running_mean.copy_(bn_mean_[i]);
    bn->running_var.copy_(bn_var_[i]);
    bn->num_batches_tracked.fill_(bn_batches_);
    bn->options.momentum(c10::nullopt);
    bn->train();
  }
  try {
    AutocastScope autocast(runner.device(), precision);
    model->embed(x);
  } catch (...) {
    for (size_t i = 0; i < bns.size(); ++i) {
      bns[i]->running_mean.copy_(saved[i].mean);
      bns[i]->running_var.copy_(saved[i].var);
      bns[i]->num_batches_tracked.copy_(saved[i].count);
      bns[i]->options.momentum(saved[i].momentum);
    }
    model->eval();
    throw;
  }
  for (size_t i = 0; i < bns.size(); ++i) {
    auto* bn = bns[i];
    bn_mean_[i] = bn->running_mean.clone();
    bn_var_[i] = bn->running_var.clone();
    bn->running_mean.copy_(saved[i].mean);
    bn->running_var.copy_(saved[i].var);
    bn->num_batches_tracked.copy_(saved[i].count);
    bn->options.momentum(saved[i].momentum);
  }
  model->eval();
  ++bn_batches_;
  bn_seen_ += b;
}

torch::Tensor FeatureBank::features() const {
  if (chunks_.empty()) throw std::invalid_argument("no embeddings collected (empty dataset?)");
  return torch::cat(chunks_);
}

torch::Tensor FeatureBank::labels() const {
  if (labels_.empty()) throw std::invalid_argument("no embeddings collected (empty dataset?)");
  return torch::cat(labels_);
}

double FeatureBank::bn_shift() const {
  if (bn_mean_.empty() || bn_batches_ == 0) return -1;
  double total = 0;
  for (size_t i = 0; i < bn_mean_.size(); ++i) {
    auto md = bn_mean_[i].to(torch::kDouble).cpu(), vd = bn_var_[i].to(torch::kDouble).cpu().clamp_min(1e-8);
    auto mr = ref_mean_[i].cpu(), vr = ref_var_[i].cpu().clamp_min(1e-8);
    auto kl = 0.5 * (vd / vr + (md - mr).pow(2) / vr - 1 + (vr / vd).log());
    total += kl.mean().item<double>();
  }
  return total / static_cast<double>(bn_mean_.size());
}

void FeatureBank::clear() { *this = FeatureBank(); }

}  // namespace tl
