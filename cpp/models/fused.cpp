#include "models/fused.h"

#include "torch_compat.h"

namespace tl {

FoldedConv fold_conv_bn(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn, at::ScalarType dtype) {
  const auto& o = conv.options;
  FoldedConv f;
  f.stride = {o.stride()->begin(), o.stride()->end()};
  f.padding = compat::conv_padding<2>(o);
  f.dilation = {o.dilation()->begin(), o.dilation()->end()};
  f.groups = o.groups();
  const auto format = conv.weight.suggest_memory_format();
  auto w = conv.weight.to(torch::kFloat32);
  torch::Tensor b = conv.bias.defined() ? conv.bias.to(torch::kFloat32) : torch::Tensor();
  if (bn) {
    // in fp32 whatever the parameters' dtype, then cast once
    auto scale = bn->weight.to(torch::kFloat32) * torch::rsqrt(bn->running_var.to(torch::kFloat32) + bn->options.eps());
    auto shift = bn->bias.to(torch::kFloat32) - bn->running_mean.to(torch::kFloat32) * scale;
    w = w * scale.view({-1, 1, 1, 1});
    b = b.defined() ? b * scale + shift : shift;
  }
  f.weight = w.to(dtype).contiguous(format);
  if (b.defined()) f.bias = b.to(dtype).contiguous();
  return f;
}

torch::Tensor FusedBlock::forward(const torch::Tensor& x) const {
  auto identity = downsample ? (*downsample)(x) : x;
  auto out = x;
  for (size_t i = 0; i < convs.size(); ++i) {
    out = convs[i](out);
    if (i + 1 < convs.size()) out.relu_();
  }
  return out.add_(identity).relu_();
}

at::ScalarType compute_dtype(const torch::Tensor& x) {
  if (auto d = compat::autocast_dtype(x.device().type())) return *d;
  return x.scalar_type();
}

bool fusable(const torch::nn::Module& m) { return !m.is_training() && !at::GradMode::is_enabled(); }

}  // namespace tl
