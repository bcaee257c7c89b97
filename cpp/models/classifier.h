// Common base for every image classifier in the zoo: a backbone producing pooled features and a head.
#pragma once
#include <torch/torch.h>
#include <string>
#include <vector>

namespace tl {

class GraphBuilder;

class ClassifierImpl : public torch::nn::Module {
 public:
  // Raw logits [N, numClasses].
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // Pooled features before the head [N, featureDim].
  virtual torch::Tensor embed(torch::Tensor x) = 0;
  // What the head consumes (pooled features for ResNets, the feature map for SqueezeNet); forward(x) is
  // exactly head(backbone(x)), which is what feature caching relies on.
  virtual torch::Tensor backbone(torch::Tensor x) = 0;
  // Logits from backbone output (the head alone, including dropout in train mode).
  virtual torch::Tensor head(torch::Tensor features) = 0;
  // State-dict prefix of the head's parameters ("fc", "classifier.1").
  virtual std::string head_prefix() const = 0;
  // Ordered freezing boundaries ("conv1", "layer1"... or "features.3"...), earliest first.
  virtual std::vector<std::string> stages() const = 0;
  virtual int64_t feature_dim() const = 0;
  // The last convolutional feature map [N, C, h, w] (Grad-CAM's target layer: layer4, features) and the logits
  // from it: forward(x) == head_from_map(feature_map(x)).
  virtual torch::Tensor feature_map(torch::Tensor x) = 0;
  virtual torch::Tensor head_from_map(torch::Tensor map) = 0;
  // The head as one Linear layer on embed()'s pooled features, or null (squeezenet1_1's conv head).
  virtual torch::nn::Linear linear_head() const = 0;
  // The network split at a stage boundary (an index into stages()): prefix runs the stages before `stage`, suffix
  // the rest and the head, so forward(x) == suffix(prefix(x, s), s) for every s; prefix(x, last) == backbone(x).
  // What the frozen-prefix cache keeps and trains on.
  virtual torch::Tensor prefix(torch::Tensor x, size_t stage) = 0;
  virtual torch::Tensor suffix(torch::Tensor h, size_t stage) = 0;
  // Index into stages() of the stage holding a parameter/buffer (by state-dict name).
  virtual size_t stage_of(const std::string& name) const = 0;
  // The eval-mode forward pass as ONNX operators from `input` on (export/graph.h); returns the logits' name.
  virtual std::string describe(GraphBuilder& g, const std::string& input) = 0;
  int64_t num_classes() const { return num_classes_; }
  // Fused inference (models/fused.h) in eval mode without gradients; on by default.
  void set_fuse(bool on) { fuse_ = on; }
  bool fuse() const { return fuse_; }

 protected:
  int64_t num_classes_ = 1000;
  double dropout_ = 0.0;
  bool fuse_ = true;
};

using Classifier = std::shared_ptr<ClassifierImpl>;

}  // namespace tl
