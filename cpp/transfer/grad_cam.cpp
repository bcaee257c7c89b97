#include "transfer/grad_cam.h"

#include <stdexcept>

namespace tl {

GradCamResult grad_cam(ClassifierImpl& model, const torch::Tensor& input, const std::vector<int64_t>& class_index) {
  const int64_t n = input.size(0);
  if (static_cast<int64_t>(class_index.size()) != n) throw std::invalid_argument("one class index per image is needed");
  torch::AutoGradMode grad(true);
  model.eval();
  torch::Tensor map;
  {
    torch::NoGradGuard no_grad;  // the backbone needs no graph: gradients stop at the feature map
    map = model.feature_map(input);
  }
  map = map.to(torch::kFloat).detach().requires_grad_(true);
  auto logits = model.head_from_map(map).to(torch::kFloat);
  GradCamResult out;
  auto predicted = logits.argmax(1).cpu();
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = class_index[static_cast<size_t>(i)];
    if (c >= logits.size(1)) throw std::invalid_argument("classIndex " + std::to_string(c) + " is out of range [0, " + std::to_string(logits.size(1) - 1) + "]");
    out.class_index.push_back(c < 0 ? predicted[i].item<int64_t>() : c);
  }
  auto idx = torch::tensor(out.class_index, torch::kLong).to(logits.device()).unsqueeze(1);
  auto score = logits.gather(1, idx).sum();
  auto grads = torch::autograd::grad({score}, {map})[0];
  torch::NoGradGuard no_grad;
  auto weights = grads.mean({2, 3}, /*keepdim=*/true);
  auto cam = (weights * map).sum(1, /*keepdim=*/true).relu();
  auto up = torch::nn::functional::interpolate(
      cam, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{input.size(2), input.size(3)})
               .mode(torch::kBilinear)
               .align_corners(false));
  auto peak = up.amax({2, 3}, /*keepdim=*/true);
  up = torch::where(peak > 0, up / peak.clamp_min(1e-30), torch::zeros_like(up));
  out.heatmap = up.squeeze(1).cpu().contiguous();
  out.probabilities = torch::softmax(logits.detach(), 1).cpu().contiguous();
  return out;
}

}  // namespace tl
