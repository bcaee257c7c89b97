// The .safetensors reader. The custom mutator is header-aware: it mutates the JSON header (or, one time in four,
// the data section) and rewrites the 8-byte header length to match, so mutations reach the JSON and the offset
// checks instead of failing the length check.
#include <cstring>
#include <vector>

#include "common.h"
#include "errors.h"
#include "io/checkpoint.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  if (size < 8) return LLVMFuzzerMutate(data, size, max_size);
  uint64_t hlen = 0;
  std::memcpy(&hlen, data, 8);
  if (hlen > size - 8 || seed % 8 == 0) return LLVMFuzzerMutate(data, size, max_size);
  std::vector<uint8_t> header(data + 8, data + 8 + hlen), rest(data + 8 + hlen, data + size);
  if (seed % 4 == 1 && !rest.empty()) {
    rest.resize(LLVMFuzzerMutate(rest.data(), rest.size(), rest.size()));
  } else {
    const size_t room = max_size > 8 + rest.size() ? max_size - 8 - rest.size() : header.size();
    header.resize(std::max(room, header.size()));
    header.resize(LLVMFuzzerMutate(header.data(), hlen, header.size()));
  }
  const uint64_t nh = header.size();
  if (8 + nh + rest.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, &nh, 8);
  if (nh) std::memcpy(data + 8, header.data(), nh);
  if (!rest.empty()) std::memcpy(data + 8 + nh, rest.data(), rest.size());
  return 8 + nh + rest.size();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::read_checkpoint_file(data, size, ".safetensors", tl::read_checkpoint_metadata, tl::read_checkpoint);
  return 0;
}
