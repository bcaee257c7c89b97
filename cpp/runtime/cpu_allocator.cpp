#include "runtime/cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include "torch_compat.h"
#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace tl {
namespace {

constexpr size_t kAlign = 64;             // c10's CPU alignment
constexpr size_t kHeader = kAlign;        // the block's size class is stored in front of the data
constexpr size_t kMinCached = 256 << 10;  // smaller blocks go straight to malloc/free

// Size classes: up to 1 MiB, multiples of 64 KiB; above, 2^k * {1, 1.25, 1.5, 1.75} (at most 25 % slack).
size_t size_class(size_t n) {
  if (n < kMinCached) return n;
  if (n <= (1u << 20)) return (n + (64u << 10) - 1) & ~static_cast<size_t>((64u << 10) - 1);
  size_t p = 1u << 20;
  while (p * 2 <= n) p *= 2;
  const size_t q = p / 4;
  return ((n + q - 1) / q) * q;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) TL_ALLOCATE_CONST override {
    void* data = const_cast<CachingCpuAllocator*>(this)->alloc(nbytes);
    return {data, data, &CachingCpuAllocator::deleter, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleter; }
  TL_ALLOCATOR_COPY_DATA

  void set_limit(size_t limit) {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      limit_ = limit;
      trim_locked(&drop);
    }
    for (void* b : drop) std::free(b);
  }
  void empty() {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& kv : free_)
        for (void* b : kv.second) drop.push_back(b);
      free_.clear();
      cached_ = 0;
    }
    for (void* b : drop) std::free(b);
  }
  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {cached_, limit_, hits_, misses_};
  }

  static CachingCpuAllocator& instance() {
    static CachingCpuAllocator* a = new CachingCpuAllocator();  // never destroyed: tensors may outlive statics
    return *a;
  }

 private:
  void* alloc(size_t nbytes) {
    const size_t cls = size_class(nbytes == 0 ? 1 : nbytes);
    if (cls >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* base = it->second.back();
        it->second.pop_back();
        cached_ -= cls;
        ++hits_;
        return static_cast<char*>(base) + kHeader;
      }
      ++misses_;
    }
    void* base = nullptr;
    if (posix_memalign(&base, kAlign, cls + kHeader) != 0) {
      empty();  // give the cache back to the system and try once more
      if (posix_memalign(&base, kAlign, cls + kHeader) != 0)
        TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU out of memory: tried to allocate ", nbytes, " bytes");
    }
    *static_cast<size_t*>(base) = cls;
    return static_cast<char*>(base) + kHeader;
  }

  static void deleter(void* data) {
    if (!data) return;
    void* base = static_cast<char*>(data) - kHeader;
    const size_t cls = *static_cast<size_t*>(base);
    if (cls >= kMinCached) {
      CachingCpuAllocator& a = instance();
      std::lock_guard<std::mutex> lock(a.mu_);
      if (a.cached_ + cls <= a.limit_) {
        a.free_[cls].push_back(base);
        a.cached_ += cls;
        return;
      }
    }
    std::free(base);
  }

  // Drops blocks (largest classes first) until the cache fits its limit.
  void trim_locked(std::vector<void*>* drop) {
    while (cached_ > limit_ && !free_.empty()) {
      auto largest = free_.begin();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->first > largest->first) largest = it;
      while (!largest->second.empty() && cached_ > limit_) {
        drop->push_back(largest->second.back());
        largest->second.pop_back();
        cached_ -= largest->first;
      }
      if (largest->second.empty()) free_.erase(largest);
    }
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  size_t limit_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

std::once_flag g_installed;

}  // namespace

size_t default_cpu_cache_limit() {
  if (const char* env = std::getenv("TORCH_RESNET_TL_CPU_CACHE_BYTES")) {
    try {
      return static_cast<size_t>(std::stoull(env));
    } catch (...) {
    }
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return size_t{2} << 30;
  return static_cast<size_t>(pages) * static_cast<size_t>(page) / 4;
}

void install_cpu_cache(size_t limit_bytes) {
  auto& a = CachingCpuAllocator::instance();
  a.set_limit(limit_bytes);
  std::call_once(g_installed, [&a] { c10::SetCPUAllocator(&a, /*priority*/ 1); });
}

void set_cpu_cache_limit(size_t limit_bytes) { CachingCpuAllocator::instance().set_limit(limit_bytes); }
void empty_cpu_cache() { CachingCpuAllocator::instance().empty(); }
CpuCacheStats cpu_cache_stats() { return CachingCpuAllocator::instance().stats(); }

}  // namespace tl
