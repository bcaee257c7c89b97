#include "transfer/domain.h"

#include <stdexcept>

namespace tl {
namespace {

struct GradReverse : public torch::autograd::Function<GradReverse> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double lambda) {
    ctx->saved_data["lambda"] = lambda;
    return x.view_as(x);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const double lambda = ctx->saved_data["lambda"].toDouble();
    return {grads[0].neg() * lambda, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor reverse_gradient(const torch::Tensor& x, double lambda) { return GradReverse::apply(x, lambda); }

torch::Tensor mk_mmd(const torch::Tensor& source, const torch::Tensor& target, int kernels) {
  const int64_t ns = source.size(0);
  auto joint = torch::cat({source, target}).to(torch::kFloat);
  auto d2 = torch::cdist(joint, joint).pow(2);
  const int64_t n = joint.size(0);
  auto base = d2.detach().sum() / static_cast<double>(n * n - n);
  torch::Tensor k = torch::zeros_like(d2);
  for (int i = 0; i < kernels; ++i) {
    const double scale = std::pow(2.0, i - kernels / 2);
    k = k + torch::exp(-d2 / (base * scale).clamp_min(1e-12));
  }
  auto kss = k.slice(0, 0, ns).slice(1, 0, ns).mean();
  auto ktt = k.slice(0, ns).slice(1, ns).mean();
  auto kst = k.slice(0, 0, ns).slice(1, ns).mean();
  return kss + ktt - 2 * kst;
}

DomainAdapterImpl::DomainAdapterImpl(AdaptConfig cfg, int64_t feature_dim) : cfg_(std::move(cfg)) {
  if (cfg_.method == "dann") {
    discriminator_ = register_module(
        "discriminator",
        torch::nn::Sequential(torch::nn::Linear(feature_dim, cfg_.hidden), torch::nn::ReLU(), torch::nn::Linear(cfg_.hidden, cfg_.hidden),
                              torch::nn::ReLU(), torch::nn::Linear(cfg_.hidden, 1)));
  } else if (cfg_.method != "mmd") {
    throw std::invalid_argument("domainAdaptation.method must be 'dann' or 'mmd', got '" + cfg_.method + "'");
  }
}

torch::Tensor DomainAdapterImpl::loss(const torch::Tensor& source, const torch::Tensor& target, double lambda) {
  auto fs = source.to(torch::kFloat), ft = target.to(torch::kFloat);
  if (cfg_.method == "mmd") return cfg_.weight * lambda * mk_mmd(fs, ft, cfg_.kernels);
  auto logits = discriminator_->forward(reverse_gradient(torch::cat({fs, ft}), lambda)).squeeze(1);
  auto domain = torch::cat({torch::ones({fs.size(0)}, logits.options()), torch::zeros({ft.size(0)}, logits.options())});
  {
    torch::NoGradGuard ng;
    domain_accuracy_ = (logits > 0).to(torch::kFloat).eq(domain).to(torch::kFloat).mean().item<double>();
  }
  return cfg_.weight * torch::binary_cross_entropy_with_logits(logits, domain);
}

}  // namespace tl
