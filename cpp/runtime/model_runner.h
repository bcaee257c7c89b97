// A model instance with its device, layout and precision settings: what the binding drives.
#pragma once
#include <mutex>

#include "io/state_dict.h"
#include "models/classifier.h"
#include "runtime/autocast.h"

namespace tl {

Precision parse_precision(const std::string& s);  // "fp32" | "bf16" | "fp16"

// Every field is set by the binding from the JS options (lib/model.ts holds the defaults).
struct ModelConfig {
  std::string arch;
  int64_t num_classes{};
  double dropout{};
  std::string device;
  bool channels_last{};
  std::string head;  // "torchvision" | "linear", see create_model
  bool fuse{};       // fused inference (models/fused.h)
};

class ModelRunner {
 public:
  explicit ModelRunner(const ModelConfig& config);

  // Loads a checkpoint; with allow_head_mismatch a head of another numClasses keeps its fresh init.
  LoadReport load_weights(const std::string& path, bool allow_head_mismatch, std::map<std::string, std::string>* metadata);
  void save(const std::string& path, const std::map<std::string, std::string>& metadata);
  void to(const std::string& device);
  // Replaces the head with a fresh one of another kind ("linear", "torchvision"); the backbone keeps its weights.
  void set_head(const std::string& head);

  // Inference (InferenceMode, eval mode). Input is a CPU float tensor [N, 3, H, W]; returns a CPU float tensor.
  torch::Tensor forward(const torch::Tensor& input, Precision precision, bool embed);
  // One plain SGD step with cross-entropy (train mode): the parity reference step. Returns the loss.
  // One plain SGD step (forward under `precision` autocast): the reference step of parity checks and benchmarks.
  double sgd_step(const torch::Tensor& input, const torch::Tensor& labels, double lr, Precision precision = Precision::FP32);

  int64_t parameter_count(bool trainable_only) const;
  StateDict state_dict() const;

  const ModelConfig& config() const { return config_; }
  std::string device_string() const;
  Classifier module() const { return model_; }
  std::mutex& mutex() { return mu_; }
  torch::Device device() const { return device_; }
  // Moves an input batch to the model's device and layout.
  torch::Tensor prepare(const torch::Tensor& input) const;

 private:
  ModelConfig config_;
  torch::Device device_;
  Classifier model_;
  std::mutex mu_;
};

}  // namespace tl
