// A restricted unpickler (data only: an allowlist of globals, nothing executed) and a small pickler
// for state dicts, both for PyTorch's checkpoint format.
#pragma once
#include <torch/torch.h>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace tl {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Tensor, Storage };
  Kind kind = None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;   // Str/Bytes; Global: "module.name"
  std::vector<PyRef> items;                    // Tuple/List
  std::vector<std::pair<PyRef, PyRef>> dict;   // Dict (insertion order)
  torch::Tensor tensor;                        // Tensor; Storage: flat 1-D tensor of the storage
  uint32_t depth = 0;                          // nesting depth of containers below (bounded while unpickling)
};

// Resolves a persistent id ('storage', <Global torch.XStorage>, key, location, numel) to a storage tensor.
using StorageResolver = std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

// Throws CheckpointError with `source` in the message on malformed input or a refused global. Containers nest at
// most kMaxPickleDepth levels (a state dict needs a handful; deeper is refused, not a stack overflow).
constexpr uint32_t kMaxPickleDepth = 100;
PyRef unpickle(const uint8_t* data, size_t size, const StorageResolver& resolve, const std::string& source);

// Empties every container reachable from `root` (iteratively, cycle-safe), so that reference cycles a hostile pickle
// built (a list that holds itself) are freed too. Call when done with an unpickled object.
void release_pickle(const PyRef& root);
// The same for several roots, leaving alone (and not descending into) the objects in `keep`.
void release_graph(std::vector<PyRef> roots, const std::unordered_set<const PyValue*>& keep);

// Pickles an OrderedDict of tensors as torch.save does; storages are written by the caller as
// data/<index> in the order given (one storage per tensor, contiguous).
std::string pickle_state_dict(const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

// "torch.FloatStorage" <-> dtype. Returns false for unknown names.
bool storage_dtype(const std::string& global, torch::ScalarType* out);
std::string storage_name(torch::ScalarType dtype);

}  // namespace tl
