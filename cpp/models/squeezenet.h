// SqueezeNet 1.1 with torchvision's module names (features.N, classifier.1) and initialisation.
#pragma once
#include "models/classifier.h"

namespace tl {

class SqueezeNetImpl : public ClassifierImpl {
 public:
  // linear_head: Dropout + Linear(512, numClasses) on the pooled features (classifier.1 holds it) instead of
  // torchvision's Dropout → 1×1 conv → ReLU → average pool.
  SqueezeNetImpl(int64_t num_classes, double dropout, bool linear_head = false);
  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor embed(torch::Tensor x) override;
  torch::Tensor backbone(torch::Tensor x) override;
  torch::Tensor head(torch::Tensor features) override;
  std::string head_prefix() const override { return "classifier.1"; }
  std::vector<std::string> stages() const override;
  int64_t feature_dim() const override { return 512; }
  size_t stage_of(const std::string& name) const override;
  torch::Tensor feature_map(torch::Tensor x) override { return features_->forward(x); }
  torch::Tensor head_from_map(torch::Tensor map) override;
  torch::Tensor prefix(torch::Tensor x, size_t stage) override;
  torch::Tensor suffix(torch::Tensor h, size_t stage) override;
  torch::nn::Linear linear_head() const override { return linear_; }
  std::string describe(GraphBuilder& g, const std::string& input) override;

 private:
  torch::nn::Sequential features_{nullptr};
  torch::nn::Sequential classifier_{nullptr};
  torch::nn::Conv2d final_conv_{nullptr};
  torch::nn::Linear linear_{nullptr};
};

}  // namespace tl
