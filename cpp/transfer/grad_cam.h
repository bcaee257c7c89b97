// Grad-CAM (Selvaraju et al., ICCV 2017) on the last convolutional feature map of any zoo model.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"

namespace tl {

struct GradCamResult {
  torch::Tensor heatmap;        // float CPU [N, H, W] in [0, 1] (input resolution)
  torch::Tensor probabilities;  // float CPU [N, C]
  std::vector<int64_t> class_index;
};

// Class `class_index[i]` of sample i (-1: the predicted class). Weights w_k are the spatial means of
// ∂logit/∂A_k; the map ReLU(Σ_k w_k A_k) is upsampled bilinearly (align_corners false) to the input size and
// divided by its maximum (left at 0 when the map is all zero). fp32, eval mode.
GradCamResult grad_cam(ClassifierImpl& model, const torch::Tensor& input, const std::vector<int64_t>& class_index);

}  // namespace tl
