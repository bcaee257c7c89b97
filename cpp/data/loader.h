// Multi-threaded batch loader: native worker threads decode and transform samples into batches, ahead of use.
#pragma once
#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "data/batch_augment.h"
#include "data/dataset.h"

namespace tl {

// Fully specified by the caller: the defaults live in lib/data.ts (LOADER_DEFAULTS); value-initialised here.
struct LoaderConfig {
  int64_t batch_size{};
  bool shuffle{};
  uint64_t seed{};
  bool drop_last{};
  int workers{};
  int prefetch{};         // batches ready ahead, per worker (>= 1)
  bool skip_errors{};     // drop undecodable samples (reported) instead of failing
  bool pin_memory{};      // batches in page-locked memory (worker threads) for async host->CUDA copies
  // The spec's pixel-wise random tail and MixUp/CutMix run on the consumer's device (Batch::materialize) on a uint8
  // batch, instead of per sample on the loader threads. Same results (parameters drawn here, identically).
  bool defer_augment{};
  // data-parallel shard (DistributedSampler's semantics): this rank's share of the epoch order; world_size 1: all
  int rank{};
  int world_size{};
  MixConfig mix;  // all zero: no mixing
};

struct Batch {
  torch::Tensor images;   // float [B, 3, H, W]; uint8 while `deferred` holds the rest of the augmentation
  torch::Tensor labels;   // int64 [B], or float [B, C] soft labels when mixed
  std::shared_ptr<const DeferredAugment> deferred;
  std::vector<int64_t> indices;
  std::vector<Skipped> skipped;
  // The consumer is done: the tensors are freed now rather than when the last holder lets go (a JS wrapper waits
  // for garbage collection), so the caching CPU allocator hands the memory to the next batch.
  void release();
  // The float batch on `device`: the images moved there (asynchronously from pinned memory) and, when the loader
  // deferred augmentation, the tail and mixing applied there.
  torch::Tensor materialize(const torch::Device& device) const;
};

// `t` on `device`; a copy from page-locked host memory is asynchronous (the stream orders it before the compute).
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device);

// Sample order of an epoch: identity, or a permutation seeded by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, uint64_t epoch);
// Rank `rank`'s share of `order` as torch's DistributedSampler: padded from the start to equal shards (or cut to
// them with drop_last), then every world-th sample from `rank` on.
std::vector<int64_t> shard_order(std::vector<int64_t> order, int rank, int world, bool drop_last);
// Samples in each rank's shard of `n` (n itself for one rank).
int64_t shard_size(int64_t n, int world, bool drop_last);

// Mixes a batch in place (torchvision references' RandomMixup / RandomCutmix); returns soft labels [B, C].
torch::Tensor mix_batch(torch::Tensor& images, const torch::Tensor& labels, const MixConfig& cfg, SampleRng& rng, bool cutmix);

class Loader {
 public:
  Loader(std::shared_ptr<const ImageDataset> dataset, LoaderConfig cfg, std::shared_ptr<DecodedCache> cache);
  ~Loader();
  int64_t num_batches() const;
  // Data-parallel shard and the (common) seed from the next start() on.
  void set_shard(int rank, int world_size, uint64_t seed);
  // Turns deferred augmentation on or off from the next start() on.
  void set_defer_augment(bool on);
  // Starts an epoch (stops any running one). Order: a permutation seeded by (seed, epoch) when shuffling.
  // start, stop and next may be called from different threads (the binding runs them on workers).
  void start(uint64_t epoch);
  // Blocks until the next batch is ready. Returns false at the end of the epoch. Throws DatasetError.
  bool next(Batch* out);
  void stop();

 private:
  void worker_loop();
  void stop_threads();  // with control_mu_ held
  Batch build(int64_t batch_index);

  std::shared_ptr<const ImageDataset> dataset_;
  LoaderConfig cfg_;
  std::shared_ptr<DecodedCache> cache_;
  // defer_augment: the spec up to the batchable tail (run per sample here) and the tail (drawn here, run later)
  bool deferring_ = false;
  TransformSpec prefix_;
  std::vector<TransformOp> tail_;
  std::vector<int64_t> order_;
  uint64_t epoch_ = 0;
  int64_t total_ = 0;

  std::mutex control_mu_;  // start/stop (which join and spawn threads) from any thread, one at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;  // rethrown as they are: only image errors are DatasetErrors
  int64_t next_build_ = 0;
  int64_t next_take_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tl
