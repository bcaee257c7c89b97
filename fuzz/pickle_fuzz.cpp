// Unpickler + state-dict lookup on raw pickle bytes; storages resolve to small zero tensors (at most 1 MB).
#include "common.h"
#include "errors.h"
#include "io/checkpoint.h"
#include "io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::init_once();
  tl::StorageResolver resolve = [](const std::string&, torch::ScalarType dtype, int64_t numel) {
    if (numel < 0 || numel > (1 << 20)) throw tl::CheckpointError("fuzz: storage too large");
    return torch::zeros({numel}, torch::TensorOptions().dtype(dtype));
  };
  tl::PyRef root;
  try {
    root = tl::unpickle(data, size, resolve, "fuzz.pkl");
    const tl::PyValue* sd = tl::find_state_dict(*root, "fuzz.pkl");
    size_t n = 0;
    for (const auto& kv : sd->dict) n += kv.second->kind == tl::PyValue::Tensor;
    (void)n;
  } catch (const tl::CheckpointError&) {
  }
  if (root) tl::release_pickle(root);
  return 0;
}
