#include "data/loader.h"

#include <ATen/Parallel.h>

#include "device.h"

#include <cmath>

namespace tl {
namespace {

std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

torch::Tensor mix_batch(torch::Tensor& images, const torch::Tensor& labels, const MixConfig& cfg, SampleRng& rng, bool cutmix) {
  auto plan = draw_mix(cfg, rng, cutmix, images.size(2), images.size(3));
  apply_mix(images, plan);
  return mix_labels(labels, cfg.num_classes, plan);
}

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (shuffle) {
    SampleRng rng(seed, epoch, ~uint64_t(0));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.randint(0, i + 1)]);
  }
  return order;
}

int64_t shard_size(int64_t n, int world, bool drop_last) {
  if (world <= 1) return n;
  return drop_last ? n / world : (n + world - 1) / world;
}

std::vector<int64_t> shard_order(std::vector<int64_t> order, int rank, int world, bool drop_last) {
  if (world <= 1) return order;
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t per = shard_size(n, world, drop_last);
  const int64_t total = per * world;
  if (total > n) {  // padding from the start (repeated when it needs more than one pass), as DistributedSampler
    std::vector<int64_t> padded(order);
    for (int64_t i = n; i < total; ++i) padded.push_back(order[static_cast<size_t>((i - n) % std::max<int64_t>(1, n))]);
    order.swap(padded);
  }
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(per));
  for (int64_t i = rank; i < total; i += world) out.push_back(order[static_cast<size_t>(i)]);
  return out;
}

void Batch::release() {
  images = torch::Tensor();
  labels = torch::Tensor();
  deferred.reset();
}

torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device) {
  return t.to(device, /*non_blocking=*/t.is_cpu() && !device.is_cpu() && t.is_pinned());
}

torch::Tensor Batch::materialize(const torch::Device& device) const {
  auto x = to_device(images, device);
  return deferred ? apply_deferred(x, *deferred) : x;
}

Loader::Loader(std::shared_ptr<const ImageDataset> dataset, LoaderConfig cfg, std::shared_ptr<DecodedCache> cache)
    : dataset_(std::move(dataset)), cfg_(cfg), cache_(std::move(cache)) {
  if (cfg_.batch_size < 1) throw std::invalid_argument("option batchSize must be >= 1");
  if (cfg_.workers < 1) throw std::invalid_argument("option workers must be >= 1");
  if (cfg_.prefetch < 1) throw std::invalid_argument("option prefetch must be >= 1");
  if (cfg_.world_size < 1 || cfg_.rank < 0 || cfg_.rank >= cfg_.world_size) throw std::invalid_argument("option rank must be in [0, worldSize)");
  set_defer_augment(cfg_.defer_augment);
}

void Loader::set_defer_augment(bool on) {
  stop();
  deferring_ = false;
  prefix_.ops.clear();
  tail_.clear();
  if (on) {
    const auto& ops = dataset_->transform().ops;
    const size_t k = tail_start(dataset_->transform());
    deferring_ = k < ops.size() || (cfg_.mix.num_classes > 0 && (cfg_.mix.mixup_alpha > 0 || cfg_.mix.cutmix_alpha > 0));
    prefix_.ops.assign(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(k));
    tail_.assign(ops.begin() + static_cast<std::ptrdiff_t>(k), ops.end());
  }
}

Loader::~Loader() { stop(); }

int64_t Loader::num_batches() const {
  const int64_t n = shard_size(static_cast<int64_t>(dataset_->size()), cfg_.world_size, cfg_.drop_last);  // this rank's share
  return cfg_.drop_last ? n / cfg_.batch_size : (n + cfg_.batch_size - 1) / cfg_.batch_size;
}

void Loader::set_shard(int rank, int world_size, uint64_t seed) {
  if (world_size < 1 || rank < 0 || rank >= world_size) throw std::invalid_argument("option rank must be in [0, worldSize)");
  stop();
  cfg_.rank = rank;
  cfg_.world_size = world_size;
  cfg_.seed = seed;
}

void Loader::stop() {
  std::lock_guard<std::mutex> control(control_mu_);
  stop_threads();
}

void Loader::stop_threads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Loader::start(uint64_t epoch) {
  std::lock_guard<std::mutex> control(control_mu_);
  stop_threads();
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_ = epoch;
    order_ = shard_order(epoch_order(static_cast<int64_t>(dataset_->size()), cfg_.shuffle, cfg_.seed, epoch), cfg_.rank, cfg_.world_size, cfg_.drop_last);
    total_ = num_batches();
    ready_.clear();
    errors_.clear();
    next_build_ = next_take_ = 0;
    stopping_ = false;
  }
  for (int i = 0; i < cfg_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Batch Loader::build(int64_t b) {
  Batch batch;
  const int64_t begin = b * cfg_.batch_size;
  const int64_t end = std::min<int64_t>(begin + cfg_.batch_size, static_cast<int64_t>(order_.size()));
  std::vector<int64_t> labels;
  std::shared_ptr<DeferredAugment> deferred;
  if (deferring_) {
    deferred = std::make_shared<DeferredAugment>();
    deferred->ops = tail_;
    deferred->draws.resize(tail_.size());
  }
  for (int64_t k = begin; k < end; ++k) {
    const int64_t idx = order_[k];
    SampleRng rng(cfg_.seed, epoch_, static_cast<uint64_t>(idx));
    try {
      // samples are written straight into the batch tensor, which the first sample's shape sizes
      torch::Tensor slot;
      if (batch.images.defined()) slot = batch.images[static_cast<int64_t>(labels.size())];
      torch::Tensor img;
      std::vector<TailDraw> draws;
      if (deferring_) {
        // the spec up to its tail here; the tail's draws continue the same per-sample stream
        img = dataset_->load(static_cast<size_t>(idx), rng, cache_.get(), &prefix_, nullptr);
        for (const auto& op : tail_) draws.push_back(draw_tail(op, rng, img.size(-2), img.size(-1)));
      } else {
        img = dataset_->load(static_cast<size_t>(idx), rng, cache_.get(), nullptr, slot.defined() ? &slot : nullptr);
      }
      if (!slot.defined()) {
        std::vector<int64_t> shape{end - begin};
        for (auto d : img.sizes()) shape.push_back(d);
        batch.images = torch::empty(shape, deferring_ ? img.scalar_type() : torch::kFloat32);
        slot = batch.images[0];
      } else if (img.sizes() != slot.sizes()) {
        throw DatasetError(dataset_->sample(idx).path + ": transformed to size " + shape_of(img) + " but the batch holds " +
                           shape_of(slot) + "; add a resize/crop so that every sample has one size");
      }
      // written in place by a final toTensor + normalize; other pipelines are copied (and converted to float)
      if (img.data_ptr() != slot.data_ptr()) slot.copy_(img);
      labels.push_back(dataset_->sample(idx).label);
      batch.indices.push_back(idx);
      for (size_t t = 0; t < draws.size(); ++t) deferred->draws[t].push_back(draws[t]);
    } catch (const ImageError& e) {
      if (!cfg_.skip_errors) throw DatasetError(e.what());
      batch.skipped.push_back(Skipped{dataset_->sample(idx).path, e.what()});
    }
  }
  if (labels.empty()) {
    batch.images = torch::empty({0, 3, 0, 0});
    batch.labels = torch::empty({0}, torch::kInt64);
    return batch;
  }
  if (static_cast<int64_t>(labels.size()) < end - begin) batch.images = batch.images.narrow(0, 0, static_cast<int64_t>(labels.size()));
  batch.labels = torch::tensor(labels, torch::kInt64);
  const auto& mix = cfg_.mix;
  if (mix.num_classes > 0 && (mix.mixup_alpha > 0 || mix.cutmix_alpha > 0)) {
    SampleRng rng(cfg_.seed ^ 0x9e3779b97f4a7c15ull, epoch_, static_cast<uint64_t>(b));
    bool cutmix = mix.cutmix_alpha > 0 && (mix.mixup_alpha <= 0 || rng.bernoulli(0.5));
    if (deferred) {
      deferred->mix = draw_mix(mix, rng, cutmix, batch.images.size(2), batch.images.size(3));
      batch.labels = mix_labels(batch.labels, mix.num_classes, deferred->mix);
    } else {
      batch.labels = mix_batch(batch.images, batch.labels, mix, rng, cutmix);
    }
  }
  batch.deferred = deferred;
  // Page-locked copies made here, on the worker thread, so the training step's host->device copy is asynchronous.
  // Without a CUDA device there is nothing to pin for (as torch's DataLoader, the option is then ignored).
  if (cfg_.pin_memory && cuda_available()) {
    batch.images = batch.images.pin_memory();
    batch.labels = batch.labels.pin_memory();
  }
  return batch;
}

void Loader::worker_loop() {
  at::set_num_threads(1);  // parallelism comes from the loader threads themselves
  lower_thread_priority();
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stopping_ || next_build_ >= total_ ||
               next_build_ < next_take_ + static_cast<int64_t>(cfg_.prefetch) * cfg_.workers;
      });
      if (stopping_ || next_build_ >= total_) return;
      b = next_build_++;
    }
    Batch batch;
    std::exception_ptr error;
    try {
      batch = build(b);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error)
        ready_[b] = std::move(batch);
      else
        errors_[b] = error;
    }
    cv_.notify_all();
  }
}

bool Loader::next(Batch* out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (next_take_ >= total_) return false;
  const int64_t b = next_take_;
  cv_.wait(lock, [&] { return ready_.count(b) || errors_.count(b) || stopping_; });
  if (errors_.count(b)) {
    std::exception_ptr e = errors_[b];
    lock.unlock();
    stop();
    next_take_ = total_;
    // undecodable images were made DatasetErrors by build(); out-of-memory, option and internal errors keep their
    // type (and so their error code in JS)
    std::rethrow_exception(e);
  }
  if (!ready_.count(b)) return false;
  *out = std::move(ready_[b]);
  ready_.erase(b);
  ++next_take_;
  lock.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace tl
