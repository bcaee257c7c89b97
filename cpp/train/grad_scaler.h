// Dynamic loss scaling for fp16 training (torch.amp.GradScaler's algorithm): the loss is multiplied by `scale`
// before backward so small fp16 gradients do not flush to zero; before the optimizer step the gradients are divided
// back, and a step whose gradients hold an inf or NaN is skipped and the scale backed off. After
// `growth_interval` clean steps in a row the scale grows. Device-generic tensor ops; the maths are unit-tested on
// the CPU (any precision can use it; fp16 on CUDA turns it on by default).
#pragma once
#include <torch/torch.h>

#include <vector>

namespace tl {

// Fully specified by the caller (defaults: lib/trainer.ts, torch.amp.GradScaler's); value-initialised here.
struct GradScalerConfig {
  bool enabled{};
  double init_scale{};
  double growth_factor{};
  double backoff_factor{};
  int64_t growth_interval{};
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerConfig cfg) : cfg_(cfg), scale_(cfg.init_scale) {}
  double scale() const { return cfg_.enabled ? scale_ : 1.0; }
  // loss * scale (the loss itself when disabled).
  torch::Tensor scale_loss(const torch::Tensor& loss) const { return cfg_.enabled ? loss * scale_ : loss; }
  // Divides every gradient by the scale in place; returns true when all of them are finite. Call once per step.
  bool unscale(std::vector<torch::Tensor>& params);
  // After a step (taken when `finite`, skipped otherwise): backs off or grows the scale.
  void update(bool finite);

 private:
  GradScalerConfig cfg_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

}  // namespace tl
