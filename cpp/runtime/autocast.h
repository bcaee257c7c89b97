// Thread-local autocast scope (libtorch keeps autocast state per thread): bf16/fp16 on CPU or CUDA.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace tl {

enum class Precision { FP32, BF16, FP16 };

class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, Precision p) : on_(p != Precision::FP32), cuda_(device.is_cuda()) {
    if (!on_) return;
    auto dtype = p == Precision::BF16 ? at::kBFloat16 : at::kHalf;
    if (cuda_) {
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
  }
  ~AutocastScope() {
    if (!on_) return;
    if (cuda_)
      at::autocast::set_enabled(false);
    else
      at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_, cuda_;
};

}  // namespace tl
