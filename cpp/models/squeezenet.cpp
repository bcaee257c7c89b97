#include "models/squeezenet.h"

#include "export/graph.h"

namespace tl {
namespace {

class FireImpl : public torch::nn::Module {
 public:
  FireImpl(int64_t inplanes, int64_t squeeze, int64_t e1, int64_t e3) {
    squeeze_ = register_module("squeeze", torch::nn::Conv2d(torch::nn::Conv2dOptions(inplanes, squeeze, 1)));
    register_module("squeeze_activation", torch::nn::ReLU(true));
    expand1x1_ = register_module("expand1x1", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, e1, 1)));
    register_module("expand1x1_activation", torch::nn::ReLU(true));
    expand3x3_ =
        register_module("expand3x3", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, e3, 3).padding(1)));
    register_module("expand3x3_activation", torch::nn::ReLU(true));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(squeeze_->forward(x));
    return torch::cat({torch::relu(expand1x1_->forward(x)), torch::relu(expand3x3_->forward(x))}, 1);
  }
  std::string describe(GraphBuilder& g, const std::string& x, const std::string& p) {
    auto s = g.relu(g.conv(x, *squeeze_, p + ".squeeze"));
    return g.concat({g.relu(g.conv(s, *expand1x1_, p + ".expand1x1")), g.relu(g.conv(s, *expand3x3_, p + ".expand3x3"))}, 1);
  }

 private:
  torch::nn::Conv2d squeeze_{nullptr}, expand1x1_{nullptr}, expand3x3_{nullptr};
};
TORCH_MODULE(Fire);

torch::nn::MaxPool2d pool() { return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).ceil_mode(true)); }

}  // namespace

SqueezeNetImpl::SqueezeNetImpl(int64_t num_classes, double dropout, bool linear_head) {
  num_classes_ = num_classes;
  dropout_ = dropout;  // applied by classifier.0 (torchvision's layout)
  features_ = register_module(
      "features",
      torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 3).stride(2)), torch::nn::ReLU(true),
                            pool(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(), Fire(128, 32, 128, 128),
                            Fire(256, 32, 128, 128), pool(), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256)));
  if (linear_head) {
    linear_ = torch::nn::Linear(512, num_classes);  // PyTorch's default Linear initialisation
    classifier_ = register_module("classifier", torch::nn::Sequential(torch::nn::Dropout(dropout), linear_));
  } else {
    final_conv_ = torch::nn::Conv2d(torch::nn::Conv2dOptions(512, num_classes, 1));
    classifier_ = register_module(
        "classifier", torch::nn::Sequential(torch::nn::Dropout(dropout), final_conv_, torch::nn::ReLU(true),
                                            torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions({1, 1}))));
  }
  torch::NoGradGuard guard;
  for (auto& m : modules(false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      if (!final_conv_.is_empty() && c == final_conv_.get()) {
        torch::nn::init::normal_(c->weight, 0.0, 0.01);
      } else {
        torch::nn::init::kaiming_uniform_(c->weight);
      }
      torch::nn::init::zeros_(c->bias);
    }
  }
}

torch::Tensor SqueezeNetImpl::embed(torch::Tensor x) {
  return torch::flatten(torch::adaptive_avg_pool2d(features_->forward(x), {1, 1}), 1);
}

// With the linear head the backbone ends at the pooled features (what the feature cache keeps: 512 numbers, not
// 512×13×13).
torch::Tensor SqueezeNetImpl::backbone(torch::Tensor x) { return linear_ ? embed(x) : features_->forward(x); }

torch::Tensor SqueezeNetImpl::head(torch::Tensor features) { return torch::flatten(classifier_->forward(features), 1); }

torch::Tensor SqueezeNetImpl::head_from_map(torch::Tensor map) {
  return head(linear_ ? torch::flatten(torch::adaptive_avg_pool2d(map, {1, 1}), 1) : map);
}

torch::Tensor SqueezeNetImpl::forward(torch::Tensor x) { return head(backbone(x)); }

std::string SqueezeNetImpl::describe(GraphBuilder& g, const std::string& input) {
  std::string x = input;
  for (size_t i = 0; i < features_->size(); ++i) {
    auto m = (*features_)[i];
    const std::string prefix = "features." + std::to_string(i);
    if (auto* c = m->as<torch::nn::Conv2dImpl>()) x = g.conv(x, *c, prefix);
    else if (m->as<torch::nn::ReLUImpl>()) x = g.relu(x);
    else if (auto* p = m->as<torch::nn::MaxPool2dImpl>()) x = g.maxpool(x, *p);
    else x = m->as<FireImpl>()->describe(g, x, prefix);
  }
  // classifier.0 (dropout) is the identity in eval mode
  if (linear_) return g.gemm(g.flatten(g.global_avg_pool(x)), *linear_, "classifier.1");
  return g.flatten(g.global_avg_pool(g.relu(g.conv(x, *final_conv_, "classifier.1"))));
}

namespace {
constexpr size_t kStageStarts[] = {0, 3, 6, 9, 11};  // features.N where stages() 0..4 begin
}

size_t SqueezeNetImpl::stage_of(const std::string& name) const {
  if (name.rfind("classifier.", 0) == 0) return 5;
  const size_t index = name.rfind("features.", 0) == 0 ? std::strtoul(name.c_str() + 9, nullptr, 10) : 0;
  size_t stage = 0;
  for (size_t i = 0; i < 5; ++i)
    if (index >= kStageStarts[i]) stage = i;
  return stage;
}

torch::Tensor SqueezeNetImpl::prefix(torch::Tensor x, size_t stage) {
  if (stage >= 5) return backbone(x);
  size_t i = 0;
  for (auto& m : *features_)
    if (i++ < kStageStarts[stage]) x = m.forward(x);
  return x;
}

torch::Tensor SqueezeNetImpl::suffix(torch::Tensor h, size_t stage) {
  if (stage >= 5) return head(h);
  size_t i = 0;
  for (auto& m : *features_)
    if (i++ >= kStageStarts[stage]) h = m.forward(h);
  return head(linear_ ? torch::flatten(torch::adaptive_avg_pool2d(h, {1, 1}), 1) : h);
}

std::vector<std::string> SqueezeNetImpl::stages() const {
  return {"features.0", "features.3", "features.6", "features.9", "features.11", "classifier.1"};
}

}  // namespace tl
