// A caching CPU allocator for libtorch: freed blocks of 256 KiB and more are kept (up to a byte limit) and handed
// out again for the next allocation of the same size class, instead of going back to the OS. On this project's
// machines fresh memory costs a page fault per 4 KiB on first touch, and a training step allocates and frees
// gigabytes of activations: measured, page faults made a ResNet-18 fp32 training step about 3x slower.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tl {

struct CpuCacheStats {
  size_t cached_bytes = 0;  // held in the free lists
  size_t limit_bytes = 0;   // most bytes kept in the free lists
  uint64_t hits = 0;        // allocations served from the cache
  uint64_t misses = 0;      // allocations that needed fresh memory
};

// Installs the allocator as libtorch's CPU allocator (once; later calls only change the limit).
// `limit_bytes` 0 keeps nothing cached (every large block is freed at once).
void install_cpu_cache(size_t limit_bytes);
void set_cpu_cache_limit(size_t limit_bytes);
// Frees every cached block.
void empty_cpu_cache();
CpuCacheStats cpu_cache_stats();
// Default limit: a quarter of physical memory, or $TORCH_RESNET_TL_CPU_CACHE_BYTES when set.
size_t default_cpu_cache_limit();

}  // namespace tl
