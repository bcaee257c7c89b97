#include "io/state_dict.h"

#include <set>
#include <sstream>

#include "errors.h"

namespace tl {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

namespace {
std::string join(const std::vector<std::string>& v, size_t max = 8) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}
}  // namespace

std::string LoadReport::describe() const {
  std::string s;
  if (!missing.empty()) s += "missing keys: " + join(missing) + "; ";
  if (!unexpected.empty()) s += "unexpected keys: " + join(unexpected) + "; ";
  if (!mismatched.empty()) s += "shape mismatches: " + join(mismatched) + "; ";
  if (s.size() >= 2) s.resize(s.size() - 2);
  return s;
}

StateDict module_state_dict(torch::nn::Module& module) {
  StateDict sd;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) sd.tensors.insert(prefix + p.key(), p.value());
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false)) sd.tensors.insert(prefix + b.key(), b.value());
  }
  return sd;
}

void strip_module_prefix(StateDict& sd) {
  if (sd.tensors.is_empty()) return;
  const std::string prefix = "module.";
  for (const auto& kv : sd.tensors)
    if (kv.key().rfind(prefix, 0) != 0) return;
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& kv : sd.tensors) out.insert(kv.key().substr(prefix.size()), kv.value());
  sd.tensors = std::move(out);
}

LoadReport load_into_module(torch::nn::Module& module, const StateDict& sd, const std::string& head_prefix,
                            bool allow_head_mismatch, const std::string& source) {
  LoadReport report;
  StateDict own = module_state_dict(module);
  const std::string hp = head_prefix + ".";
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (const auto& kv : own.tensors) {
    const torch::Tensor* src = sd.tensors.find(kv.key());
    if (!src) {
      report.missing.push_back(kv.key());
      continue;
    }
    if (src->sizes() != kv.value().sizes()) {
      if (allow_head_mismatch && kv.key().rfind(hp, 0) == 0) {
        report.skipped_head.push_back(kv.key() + ": file " + shape_str(src->sizes()) + " vs model " +
                                      shape_str(kv.value().sizes()));
      } else {
        report.mismatched.push_back(kv.key() + ": file " + shape_str(src->sizes()) + " vs model " +
                                    shape_str(kv.value().sizes()));
      }
      continue;
    }
    if (!src->is_floating_point() && kv.value().is_floating_point())
      report.mismatched.push_back(kv.key() + ": file dtype " + std::string(c10::toString(src->scalar_type())) +
                                  " is not floating point");
    else
      copies.emplace_back(kv.value(), *src);
  }
  for (const auto& kv : sd.tensors)
    if (!own.tensors.contains(kv.key())) report.unexpected.push_back(kv.key());
  if (!report.ok()) throw CheckpointError(source + ": state dict does not match the model: " + report.describe());
  torch::NoGradGuard guard;
  for (auto& c : copies) c.first.copy_(c.second);
  return report;
}

}  // namespace tl
