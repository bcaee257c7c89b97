#include "train/grad_scaler.h"

namespace tl {

bool GradScaler::unscale(std::vector<torch::Tensor>& params) {
  if (!cfg_.enabled) return true;
  torch::NoGradGuard ng;
  const double inv = 1.0 / scale_;
  torch::Tensor bad;  // accumulated on the gradients' device: one host sync per step, at the end
  for (auto& p : params) {
    auto& g = p.mutable_grad();
    if (!g.defined()) continue;
    g.mul_(inv);
    auto b = g.isfinite().logical_not().any();
    bad = bad.defined() ? bad.logical_or(b) : b;
  }
  return !bad.defined() || !bad.item<bool>();
}

void GradScaler::update(bool finite) {
  if (!cfg_.enabled) return;
  if (!finite) {
    scale_ *= cfg_.backoff_factor;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ >= cfg_.growth_interval) {
    scale_ *= cfg_.growth_factor;
    growth_tracker_ = 0;
  }
}

}  // namespace tl
