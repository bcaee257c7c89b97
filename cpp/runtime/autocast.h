// Thread-local autocast scope (libtorch keeps autocast state per thread): bf16/fp16 on CPU or CUDA.
#pragma once
#include "torch_compat.h"

namespace tl {

enum class Precision { FP32, BF16, FP16 };

class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, Precision p) : on_(p != Precision::FP32), cuda_(device.is_cuda()) {
    if (!on_) return;
    auto dtype = p == Precision::BF16 ? at::kBFloat16 : at::kHalf;
    compat::set_autocast(type(), true, dtype);
  }
  ~AutocastScope() {
    if (!on_) return;
    compat::set_autocast(type(), false, at::kFloat);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type() const { return cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
  bool on_, cuda_;
};

}  // namespace tl
