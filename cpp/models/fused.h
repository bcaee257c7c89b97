// Fused inference: BatchNorm folded into the preceding convolution, weights pre-cast to the compute dtype in the
// model's memory format. Used in eval mode without gradients (forward, predict, embed, evaluate, Grad-CAM's
// backbone); the module's own parameters stay the truth for training, saving and export. A folded copy is rebuilt
// whenever any source tensor changed (storage or in-place version: training, load, to(), set_data) or the compute
// dtype differs.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace tl {

// One convolution with its BatchNorm folded in: w' = w·γ/√(var+ε), b' = β − mean·γ/√(var+ε).
struct FoldedConv {
  torch::Tensor weight, bias;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups = 1;
  torch::Tensor operator()(const torch::Tensor& x) const {
    return at::conv2d(x, weight, bias, stride, padding, dilation, groups);
  }
};

// Folds `bn` (may be null: the conv's own bias, or none) into `conv`, in `dtype`, in the weight's memory format.
FoldedConv fold_conv_bn(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn, at::ScalarType dtype);

// A residual block folded: convs[i] then ReLU for all but the last; out + identity (through the folded
// downsample when there is one), ReLU.
struct FusedBlock {
  std::vector<FoldedConv> convs;
  std::optional<FoldedConv> downsample;
  torch::Tensor forward(const torch::Tensor& x) const;
};

// The dtype the convolutions run in for input `x`: the autocast dtype when autocast is on for x's device, else x's.
at::ScalarType compute_dtype(const torch::Tensor& x);

// Whether `m` may take the fused path now: eval mode and no gradients recorded.
bool fusable(const torch::nn::Module& m);

// The folded copy of one module per compute dtype, rebuilt when a source tensor changed. Thread-safe.
template <class Plan>
class FoldCache {
 public:
  std::shared_ptr<const Plan> get(const torch::nn::Module& m, at::ScalarType dtype, const std::function<Plan(at::ScalarType)>& build) {
    auto key = signature(m);
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = entries_[dtype];
    if (!e.plan || e.key != key) {
      e.plan.reset();  // drop the stale copy before building the new one: peak memory one copy, not two
      c10::InferenceMode normal_tensors(false);
      torch::NoGradGuard no_grad;
      e.plan = std::make_shared<const Plan>(build(dtype));
      e.key = std::move(key);
    }
    return e.plan;
  }
 private:
  using Key = std::vector<std::pair<const void*, uint32_t>>;
  static Key signature(const torch::nn::Module& m) {
    Key k;
    for (const auto& t : m.parameters()) k.emplace_back(t.data_ptr(), t._version());
    for (const auto& t : m.buffers()) k.emplace_back(t.data_ptr(), t._version());
    return k;
  }
  struct Entry {
    Key key;
    std::shared_ptr<const Plan> plan;
  };
  std::mutex mu_;
  std::map<at::ScalarType, Entry> entries_;
};

}  // namespace tl
