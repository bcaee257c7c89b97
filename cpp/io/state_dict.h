// State dicts: ordered name -> tensor maps, plus string metadata carried by our files.
#pragma once
#include <torch/torch.h>
#include <map>
#include <string>
#include <vector>

namespace tl {

struct StateDict {
  torch::OrderedDict<std::string, torch::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

struct LoadReport {
  std::vector<std::string> missing;     // in the model, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the model
  std::vector<std::string> mismatched;  // "name: file [a, b] vs model [c, d]"
  std::vector<std::string> skipped_head;  // head keys kept at their fresh init (numClasses differs)
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string describe() const;
};

// PyTorch's state_dict order: per module (pre-order), its own parameters then its own buffers.
StateDict module_state_dict(torch::nn::Module& module);

// Unwraps {"state_dict": ...} / {"model": ...} (done by the readers) and strips a common "module." prefix.
void strip_module_prefix(StateDict& sd);

// Copies tensors into the module. Strict: any missing, unexpected or mismatched key throws CheckpointError
// naming them, except that when the head (keys under head_prefix) differs only in shape it is kept at its
// fresh initialisation and listed in skipped_head (the transfer-learning case).
LoadReport load_into_module(torch::nn::Module& module, const StateDict& sd, const std::string& head_prefix,
                            bool allow_head_mismatch, const std::string& source);

std::string shape_str(at::IntArrayRef s);

}  // namespace tl
