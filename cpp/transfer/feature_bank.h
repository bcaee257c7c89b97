// Embeddings of a dataset collected batch by batch (what the probes, the assessment and the linear-probe
// strategy read), and the distance between the data's BatchNorm input statistics and the backbone's running
// statistics (how far the data is from what the backbone was trained on).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "data/loader.h"
#include "runtime/model_runner.h"

namespace tl {

class FeatureBank {
 public:
  // Pooled features of the batch (eval mode, no gradients, `precision` autocast) appended with its labels. While
  // fewer than `bn_samples` samples have been measured, the batch also goes once through the backbone with
  // BatchNorm in train mode to accumulate the data's per-channel statistics (the model is left as it was).
  void add(ModelRunner& runner, const Batch& batch, Precision precision, int64_t bn_samples);
  int64_t size() const { return size_; }
  torch::Tensor features() const;  // float [N, D] on the model's device
  torch::Tensor labels() const;    // int64 [N]
  std::vector<int64_t> indices() const { return indices_; }
  // Mean over BatchNorm layers of the mean over channels of KL(N(data) ‖ N(running statistics)); negative when the
  // model has no BatchNorm (squeezenet1_1) or nothing was measured.
  double bn_shift() const;
  int64_t bn_layers() const { return static_cast<int64_t>(bn_mean_.size()); }
  void clear();

 private:
  std::vector<torch::Tensor> chunks_, labels_;
  std::vector<int64_t> indices_;
  int64_t size_ = 0;
  // per BatchNorm layer: the data's cumulative mean and variance, the layer's running statistics when measured
  std::vector<torch::Tensor> bn_mean_, bn_var_, ref_mean_, ref_var_;
  int64_t bn_batches_ = 0, bn_seen_ = 0;
};

}  // namespace tl
