// ResNet family with torchvision's module names, shapes and initialisation.
#pragma once
#include "models/classifier.h"
#include "models/fused.h"

namespace tl {

struct ResNetSpec {
  bool bottleneck;
  std::vector<int64_t> layers;
  int64_t groups;
  int64_t width_per_group;
};

// Arch table: resnet18...resnext101_64x4d. Returns false when the name is not a ResNet.
bool resnet_spec(const std::string& arch, ResNetSpec* out);

class ResNetImpl : public ClassifierImpl {
 public:
  ResNetImpl(const ResNetSpec& spec, int64_t num_classes, double dropout);
  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor embed(torch::Tensor x) override;
  torch::Tensor backbone(torch::Tensor x) override { return embed(x); }
  torch::Tensor head(torch::Tensor features) override;
  std::string head_prefix() const override { return "fc"; }
  std::vector<std::string> stages() const override;
  int64_t feature_dim() const override { return feature_dim_; }
  size_t stage_of(const std::string& name) const override;
  torch::Tensor feature_map(torch::Tensor x) override;
  torch::Tensor prefix(torch::Tensor x, size_t stage) override;
  torch::Tensor suffix(torch::Tensor h, size_t stage) override;
  torch::Tensor head_from_map(torch::Tensor map) override { return head(torch::flatten(avgpool_->forward(map), 1)); }
  torch::nn::Linear linear_head() const override { return fc_; }
  std::string describe(GraphBuilder& g, const std::string& input) override;

 private:
  torch::nn::Sequential make_layer(int64_t planes, int64_t blocks, int64_t stride);
  struct Fused;
  Fused fold(at::ScalarType dtype) const;
  std::shared_ptr<FoldCache<Fused>> fused_ = std::make_shared<FoldCache<Fused>>();
  ResNetSpec spec_;
  int64_t inplanes_ = 64;
  int64_t feature_dim_ = 512;
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  torch::nn::ReLU relu_{nullptr};
  torch::nn::MaxPool2d maxpool_{nullptr};
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr}, layer4_{nullptr};
  torch::nn::AdaptiveAvgPool2d avgpool_{nullptr};
  torch::nn::Linear fc_{nullptr};
};

}  // namespace tl
