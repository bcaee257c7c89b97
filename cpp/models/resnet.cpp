#include "models/resnet.h"

#include <map>

#include "export/graph.h"
#include "models/fused.h"

namespace tl {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, int64_t groups = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(padding).groups(groups).bias(false));
}

// Shared by both block kinds: residual add with optional downsample, then ReLU.
class BlockBase : public torch::nn::Module {
 protected:
  torch::Tensor finish(const torch::Tensor& out, const torch::Tensor& identity_in) {
    // In place, as torchvision: out += identity; relu_(out)
    return out.add_(downsample_ ? downsample_->forward(identity_in) : identity_in).relu_();
  }
  // The residual tail as ONNX operators: out + identity (through the downsample when there is one), ReLU.
  std::string describe_tail(GraphBuilder& g, const std::string& out, const std::string& x, const std::string& prefix) {
    std::string identity = x;
    if (downsample_) {
      auto* c = (*downsample_)[0]->as<torch::nn::Conv2dImpl>();
      auto* bn = (*downsample_)[1]->as<torch::nn::BatchNorm2dImpl>();
      identity = g.batchnorm(g.conv(x, *c, prefix + ".downsample.0"), *bn, prefix + ".downsample.1");
    }
    return g.relu(g.add(out, identity));
  }
  // The block folded for inference: its convs (BatchNorm folded in) and the folded downsample.
  FusedBlock fold_block(std::initializer_list<std::pair<const torch::nn::Conv2d*, const torch::nn::BatchNorm2d*>> layers,
                        at::ScalarType dtype) const {
    FusedBlock f;
    for (const auto& [c, bn] : layers) f.convs.push_back(fold_conv_bn(**c, bn->get(), dtype));
    if (downsample_)
      f.downsample = fold_conv_bn(*(*downsample_)[0]->as<torch::nn::Conv2dImpl>(), (*downsample_)[1]->as<torch::nn::BatchNorm2dImpl>(), dtype);
    return f;
  }
  void register_tail(torch::nn::Sequential downsample) {
    relu_ = register_module("relu", torch::nn::ReLU(torch::nn::ReLUOptions(true)));
    if (downsample) downsample_ = register_module("downsample", downsample);
  }
  torch::nn::ReLU relu_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};

class BasicBlockImpl : public BlockBase {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, torch::nn::Sequential downsample) {
    conv1_ = register_module("conv1", conv(inplanes, planes, 3, stride, 1));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(planes));
    conv2_ = register_module("conv2", conv(planes, planes, 3, 1, 1));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(planes));
    register_tail(downsample);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = bn1_->forward(conv1_->forward(x)).relu_();
    out = bn2_->forward(conv2_->forward(out));
    return finish(out, x);
  }
  std::string describe(GraphBuilder& g, const std::string& x, const std::string& p) {
    auto out = g.relu(g.batchnorm(g.conv(x, *conv1_, p + ".conv1"), *bn1_, p + ".bn1"));
    out = g.batchnorm(g.conv(out, *conv2_, p + ".conv2"), *bn2_, p + ".bn2");
    return describe_tail(g, out, x, p);
  }
  FusedBlock fold(at::ScalarType dtype) const { return fold_block({{&conv1_, &bn1_}, {&conv2_, &bn2_}}, dtype); }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public BlockBase {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, torch::nn::Sequential downsample, int64_t groups,
                 int64_t base_width) {
    int64_t width = static_cast<int64_t>(planes * (base_width / 64.0)) * groups;
    conv1_ = register_module("conv1", conv(inplanes, width, 1, 1, 0));
    bn1_ = register_module("bn1", torch::nn::BatchNorm2d(width));
    conv2_ = register_module("conv2", conv(width, width, 3, stride, 1, groups));
    bn2_ = register_module("bn2", torch::nn::BatchNorm2d(width));
    conv3_ = register_module("conv3", conv(width, planes * kExpansion, 1, 1, 0));
    bn3_ = register_module("bn3", torch::nn::BatchNorm2d(planes * kExpansion));
    register_tail(downsample);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = bn1_->forward(conv1_->forward(x)).relu_();
    out = bn2_->forward(conv2_->forward(out)).relu_();
    out = bn3_->forward(conv3_->forward(out));
    return finish(out, x);
  }
  std::string describe(GraphBuilder& g, const std::string& x, const std::string& p) {
    auto out = g.relu(g.batchnorm(g.conv(x, *conv1_, p + ".conv1"), *bn1_, p + ".bn1"));
    out = g.relu(g.batchnorm(g.conv(out, *conv2_, p + ".conv2"), *bn2_, p + ".bn2"));
    out = g.batchnorm(g.conv(out, *conv3_, p + ".conv3"), *bn3_, p + ".bn3");
    return describe_tail(g, out, x, p);
  }
  FusedBlock fold(at::ScalarType dtype) const {
    return fold_block({{&conv1_, &bn1_}, {&conv2_, &bn2_}, {&conv3_, &bn3_}}, dtype);
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
};
TORCH_MODULE(Bottleneck);

}  // namespace

struct ResNetImpl::Fused {
  FoldedConv stem;
  std::vector<FusedBlock> blocks;
};

bool resnet_spec(const std::string& arch, ResNetSpec* out) {
  static const std::map<std::string, ResNetSpec> kArchs = {
      {"resnet18", {false, {2, 2, 2, 2}, 1, 64}},
      {"resnet34", {false, {3, 4, 6, 3}, 1, 64}},
      {"resnet50", {true, {3, 4, 6, 3}, 1, 64}},
      {"resnet101", {true, {3, 4, 23, 3}, 1, 64}},
      {"resnet152", {true, {3, 8, 36, 3}, 1, 64}},
      {"resnext50_32x4d", {true, {3, 4, 6, 3}, 32, 4}},
      {"resnext101_32x8d", {true, {3, 4, 23, 3}, 32, 8}},
      {"resnext101_64x4d", {true, {3, 4, 23, 3}, 64, 4}},
      {"wide_resnet50_2", {true, {3, 4, 6, 3}, 1, 128}},
      {"wide_resnet101_2", {true, {3, 4, 23, 3}, 1, 128}},
  };
  auto it = kArchs.find(arch);
  if (it == kArchs.end()) return false;
  if (out) *out = it->second;
  return true;
}

ResNetImpl::ResNetImpl(const ResNetSpec& spec, int64_t num_classes, double dropout) : spec_(spec) {
  num_classes_ = num_classes;
  dropout_ = dropout;
  conv1_ = register_module("conv1", conv(3, 64, 7, 2, 3));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(64));
  relu_ = register_module("relu", torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  maxpool_ = register_module("maxpool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  layer1_ = register_module("layer1", make_layer(64, spec.layers[0], 1));
  layer2_ = register_module("layer2", make_layer(128, spec.layers[1], 2));
  layer3_ = register_module("layer3", make_layer(256, spec.layers[2], 2));
  layer4_ = register_module("layer4", make_layer(512, spec.layers[3], 2));
  avgpool_ = register_module("avgpool", torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions({1, 1})));
  feature_dim_ = 512 * (spec.bottleneck ? BottleneckImpl::kExpansion : BasicBlockImpl::kExpansion);
  fc_ = register_module("fc", torch::nn::Linear(feature_dim_, num_classes));

  // torchvision: kaiming_normal_(fan_out, relu) for convs, BN weight 1 / bias 0; Linear keeps its default init.
  torch::NoGradGuard guard;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b = m->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(b->weight);
      torch::nn::init::zeros_(b->bias);
    }
  }
}

torch::nn::Sequential ResNetImpl::make_layer(int64_t planes, int64_t blocks, int64_t stride) {
  const int64_t expansion = spec_.bottleneck ? BottleneckImpl::kExpansion : BasicBlockImpl::kExpansion;
  torch::nn::Sequential downsample{nullptr};
  if (stride != 1 || inplanes_ != planes * expansion) {
    downsample = torch::nn::Sequential(conv(inplanes_, planes * expansion, 1, stride, 0),
                                       torch::nn::BatchNorm2d(planes * expansion));
  }
  torch::nn::Sequential layer;
  for (int64_t i = 0; i < blocks; ++i) {
    int64_t s = i == 0 ? stride : 1;
    auto ds = i == 0 ? downsample : torch::nn::Sequential{nullptr};
    if (spec_.bottleneck) {
      layer->push_back(Bottleneck(inplanes_, planes, s, ds, spec_.groups, spec_.width_per_group));
    } else {
      layer->push_back(BasicBlock(inplanes_, planes, s, ds));
    }
    inplanes_ = planes * expansion;
  }
  return layer;
}

ResNetImpl::Fused ResNetImpl::fold(at::ScalarType dtype) const {
  Fused f{fold_conv_bn(*conv1_, bn1_.get(), dtype), {}};
  for (const auto& layer : {layer1_, layer2_, layer3_, layer4_})
    for (const auto& block : *layer) {
      if (auto* b = block.ptr()->as<BasicBlockImpl>()) f.blocks.push_back(b->fold(dtype));
      else f.blocks.push_back(block.ptr()->as<BottleneckImpl>()->fold(dtype));
    }
  return f;
}

torch::Tensor ResNetImpl::feature_map(torch::Tensor x) {
  if (fuse_ && fusable(*this)) {
    auto f = fused_->get(*this, compute_dtype(x), [this](at::ScalarType d) { return fold(d); });
    x = maxpool_->forward(f->stem(x).relu_());
    for (const auto& b : f->blocks) x = b.forward(x);
    return x;
  }
  return layer4_->forward(prefix(x, 4));
}

torch::Tensor ResNetImpl::prefix(torch::Tensor x, size_t stage) {
  if (stage >= 5) return embed(x);
  if (stage == 0) return x;
  x = maxpool_->forward(bn1_->forward(conv1_->forward(x)).relu_());
  torch::nn::Sequential layers[] = {layer1_, layer2_, layer3_};
  for (size_t i = 0; i + 1 < stage; ++i) x = layers[i]->forward(x);
  return x;
}

torch::Tensor ResNetImpl::suffix(torch::Tensor h, size_t stage) {
  if (stage >= 5) return head(h);
  if (stage == 0) return forward(h);
  torch::nn::Sequential layers[] = {layer1_, layer2_, layer3_, layer4_};
  for (size_t i = stage - 1; i < 4; ++i) h = layers[i]->forward(h);
  return head_from_map(h);
}

torch::Tensor ResNetImpl::embed(torch::Tensor x) { return torch::flatten(avgpool_->forward(feature_map(x)), 1); }

torch::Tensor ResNetImpl::head(torch::Tensor features) {
  if (dropout_ > 0) features = torch::dropout(features, dropout_, is_training());
  return fc_->forward(features);
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) { return head(embed(x)); }

std::string ResNetImpl::describe(GraphBuilder& g, const std::string& input) {
  auto x = g.maxpool(g.relu(g.batchnorm(g.conv(input, *conv1_, "conv1"), *bn1_, "bn1")), *maxpool_);
  const torch::nn::Sequential layers[] = {layer1_, layer2_, layer3_, layer4_};
  for (size_t i = 0; i < 4; ++i) {
    for (size_t j = 0; j < layers[i]->size(); ++j) {
      const std::string prefix = "layer" + std::to_string(i + 1) + "." + std::to_string(j);
      auto block = (*layers[i])[j];
      if (auto* b = block->as<BasicBlockImpl>()) x = b->describe(g, x, prefix);
      else x = block->as<BottleneckImpl>()->describe(g, x, prefix);
    }
  }
  // dropout is the identity in eval mode
  return g.gemm(g.flatten(g.global_avg_pool(x)), *fc_, "fc");
}

size_t ResNetImpl::stage_of(const std::string& name) const {
  for (size_t i = 1; i <= 4; ++i)
    if (name.rfind("layer" + std::to_string(i) + ".", 0) == 0) return i;
  if (name.rfind("fc.", 0) == 0) return 5;
  return 0;  // conv1, bn1
}

std::vector<std::string> ResNetImpl::stages() const {
  return {"conv1", "layer1", "layer2", "layer3", "layer4", "fc"};
}

}  // namespace tl
