// Unsupervised domain adaptation on pooled backbone features: DANN (Ganin et al., JMLR 2016: a domain classifier
// behind a gradient-reversal layer) and multi-kernel MMD (DAN, Long et al., ICML 2015).
#pragma once
#include <torch/torch.h>

#include <string>

namespace tl {

// Fully specified by the caller (defaults in lib/trainer.ts).
struct AdaptConfig {
  std::string method;  // "dann" | "mmd"
  double weight{};     // trade-off of the adaptation loss
  int64_t hidden{};    // DANN: width of the domain classifier's two hidden layers
  int kernels{};       // MMD: Gaussian kernels, bandwidths base·2^(k - kernels/2)
};

// x in the forward pass; -lambda·grad in the backward pass.
torch::Tensor reverse_gradient(const torch::Tensor& x, double lambda);

// Multi-kernel MMD² (biased estimate) between two feature batches: a sum of Gaussian kernels whose bandwidths are
// the mean pairwise squared distance of the joint batch (not differentiated) times 2^-k/2 … 2^k/2.
torch::Tensor mk_mmd(const torch::Tensor& source, const torch::Tensor& target, int kernels);

class DomainAdapterImpl : public torch::nn::Module {
 public:
  DomainAdapterImpl(AdaptConfig cfg, int64_t feature_dim);
  // The adaptation loss (weight included) of pooled source and target features. `lambda` is the schedule's factor
  // (0 → 1 over training): DANN reverses gradients scaled by it; MMD scales its loss by it.
  torch::Tensor loss(const torch::Tensor& source, const torch::Tensor& target, double lambda);
  // DANN: the domain classifier's accuracy on the last batch (0.5 means the domains look alike); -1 for MMD.
  double domain_accuracy() const { return domain_accuracy_; }
  const AdaptConfig& config() const { return cfg_; }

 private:
  AdaptConfig cfg_;
  torch::nn::Sequential discriminator_{nullptr};
  double domain_accuracy_ = -1;
};
TORCH_MODULE(DomainAdapter);

}  // namespace tl
