#include "runtime/model_runner.h"

#include "device.h"
#include "io/checkpoint.h"
#include "models/registry.h"

namespace tl {
namespace {

void to_channels_last(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
}

}  // namespace

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::FP32;
  if (s == "bf16") return Precision::BF16;
  if (s == "fp16") return Precision::FP16;
  throw std::invalid_argument("precision must be fp32, bf16 or fp16, got '" + s + "'");
}

ModelRunner::ModelRunner(const ModelConfig& config)
    : config_(config), device_(parse_device(config.device)) {
  apply_threads();
  model_ = create_model(config.arch, config.num_classes, config.dropout, config.head);
  model_->set_fuse(config.fuse);
  model_->eval();
  model_->to(device_);
  if (config_.channels_last) to_channels_last(*model_);
}

std::string ModelRunner::device_string() const { return device_.str(); }

LoadReport ModelRunner::load_weights(const std::string& path, bool allow_head_mismatch,
                                     std::map<std::string, std::string>* metadata) {
  apply_threads();
  StateDict sd = read_checkpoint(path);
  if (metadata) *metadata = sd.metadata;
  return load_into_module(*model_, sd, model_->head_prefix(), allow_head_mismatch, path);
}

StateDict ModelRunner::state_dict() const { return module_state_dict(*model_); }

void ModelRunner::save(const std::string& path, const std::map<std::string, std::string>& metadata) {
  StateDict sd = state_dict();
  sd.metadata = metadata;
  write_checkpoint(path, sd);
}

void ModelRunner::to(const std::string& device) {
  torch::Device d = parse_device(device);
  model_->to(d);
  if (config_.channels_last) to_channels_last(*model_);
  device_ = d;
  config_.device = d.str();
}

void ModelRunner::set_head(const std::string& head) {
  if (head == config_.head) return;
  apply_threads();
  auto fresh = create_model(config_.arch, config_.num_classes, config_.dropout, head);
  // every backbone tensor carried over; the head keys differ in shape and keep their fresh initialisation
  load_into_module(*fresh, module_state_dict(*model_), fresh->head_prefix(), true, "the current model");
  fresh->set_fuse(config_.fuse);
  fresh->eval();
  fresh->to(device_);
  if (config_.channels_last) to_channels_last(*fresh);
  model_ = fresh;
  config_.head = head;
}

torch::Tensor ModelRunner::prepare(const torch::Tensor& input) const {
  auto x = input.to(device_, /*non_blocking=*/false);
  if (config_.channels_last && x.dim() == 4) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  return x;
}

torch::Tensor ModelRunner::forward(const torch::Tensor& input, Precision precision, bool embed) {
  apply_threads();
  c10::InferenceMode guard;
  model_->eval();
  AutocastScope autocast(device_, precision);
  auto x = prepare(input);
  auto out = embed ? model_->embed(x) : model_->forward(x);
  return out.to(torch::kCPU, torch::kFloat32).contiguous();
}

double ModelRunner::sgd_step(const torch::Tensor& input, const torch::Tensor& labels, double lr, Precision precision) {
  apply_threads();
  model_->train();
  model_->zero_grad();
  torch::Tensor logits;
  {
    AutocastScope autocast(device_, precision);
    logits = model_->forward(prepare(input)).to(torch::kFloat32);
  }
  auto loss = torch::nn::functional::cross_entropy(logits, labels.to(device_));
  loss.backward();
  {
    torch::NoGradGuard g;
    for (auto& p : model_->parameters())
      if (p.grad().defined()) p.add_(p.grad(), -lr);
  }
  model_->eval();
  return loss.item<double>();
}

int64_t ModelRunner::parameter_count(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& p : model_->parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

}  // namespace tl
