// Reading and writing state-dict files: PyTorch's zip format (.pth/.pt) and safetensors.
#pragma once
#include "io/state_dict.h"

namespace tl {

struct PyValue;
// The tensor dict inside an unpickled checkpoint (following state_dict/model wrappers); CheckpointError otherwise.
const PyValue* find_state_dict(const PyValue& root, const std::string& path);

// By extension: .safetensors, otherwise PyTorch's zip format. Wrappers ({"state_dict": ...}, {"model": ...})
// and a "module." prefix are removed.
StateDict read_checkpoint(const std::string& path);
void write_checkpoint(const std::string& path, const StateDict& sd);

StateDict read_pth(const std::string& path);
void write_pth(const std::string& path, const StateDict& sd);
StateDict read_safetensors(const std::string& path);
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);
void write_safetensors(const std::string& path, const StateDict& sd);

}  // namespace tl

namespace tl {
// Only the string metadata of a checkpoint (safetensors header / our JSON record), without reading tensors.
std::map<std::string, std::string> read_checkpoint_metadata(const std::string& path);
}  // namespace tl
