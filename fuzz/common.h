// Shared by the libFuzzer harnesses: the readers take paths, so each input goes through a file in /dev/shm (one per
// process); typed refusals are the expected outcome, anything else (a sanitizer report, a crash, another exception
// type escaping) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include <torch/torch.h>

#include "errors.h"

namespace fuzz {

inline const std::string& scratch(const char* ext) {
  static const std::string path = "/dev/shm/tl-fuzz-" + std::to_string(getpid()) + ext;
  return path;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// One intra-op thread: the harnesses measure the readers, not ATen's thread pool.
inline void init_once() {
  static bool done = [] {
    torch::set_num_threads(1);
    return true;
  }();
  (void)done;
}

// Both checkpoint targets: the metadata reader and the full reader on the same file; a CheckpointError is the
// expected refusal, and every tensor read must be readable.
template <typename MetadataFn, typename ReadFn>
void read_checkpoint_file(const uint8_t* data, size_t size, const char* ext, MetadataFn metadata, ReadFn read) {
  init_once();
  const auto& path = scratch(ext);
  write_file(path, data, size);
  try {
    (void)metadata(path);
  } catch (const tl::CheckpointError&) {
  }
  try {
    auto sd = read(path);
    for (const auto& kv : sd.tensors) (void)kv.value().sum().template item<double>();
  } catch (const tl::CheckpointError&) {
  }
}

}  // namespace fuzz
