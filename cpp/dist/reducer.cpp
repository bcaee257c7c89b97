#include "dist/reducer.h"

#include <chrono>
#include <mutex>

namespace tl {

struct GradReducer::State {
  struct Bucket {
    std::vector<size_t> params;    // indices into State::params, in the order backward produces them
    std::vector<int64_t> offsets;  // where each one's elements start in `flat`
    torch::ScalarType dtype;
    int64_t numel = 0;
    torch::Tensor flat;  // on the process group's collective device
    size_t arrived = 0;
  };
  std::shared_ptr<ProcessGroup> pg;
  std::vector<torch::Tensor> params;
  std::vector<size_t> bucket_of, slot_of;
  std::vector<bool> arrived;
  std::vector<Bucket> buckets;
  size_t next = 0;  // the first bucket not started
  bool armed = false;
  bool accumulated = false;  // .grad holds earlier batches of this step
  std::mutex mu;  // CUDA gradients arrive on the autograd engine's device thread

  // Parameter p's place in its bucket, shaped as the parameter (copies in and out follow the gradients' strides,
  // channels_last included, without an intermediate contiguous copy).
  torch::Tensor slot(size_t p) {
    auto& b = buckets[bucket_of[p]];
    return b.flat.narrow(0, b.offsets[slot_of[p]], params[p].numel()).view(params[p].sizes());
  }
  // Starts, in order, every bucket whose gradients have all arrived (from the first not started on). mu held.
  void start_ready() {
    while (next < buckets.size() && buckets[next].arrived == buckets[next].params.size()) pg->start_sum(buckets[next++].flat);
  }
  // Writes parameter p's gradient for this optimizer step into its slot: this backward's `g` (from the hook; plus
  // what earlier accumulated batches left in .grad, which AccumulateGrad adds only after the hook), or without `g`
  // the .grad itself, or zeros. mu held.
  void put(size_t p, const torch::Tensor* g) {
    torch::NoGradGuard ng;
    auto s = slot(p);
    const auto& acc = params[p].grad();
    if (g) {
      s.copy_(*g);
      if (accumulated && acc.defined()) s.add_(acc.to(s.device()));
    } else if (acc.defined()) {
      s.copy_(acc);
    } else {
      s.zero_();
    }
    arrived[p] = true;
    ++buckets[bucket_of[p]].arrived;
  }
  void on_grad(size_t p, const torch::Tensor& g) {
    std::lock_guard<std::mutex> l(mu);
    if (!armed || arrived[p]) return;
    put(p, &g);
    start_ready();
  }
  void reset() {
    armed = false;
    next = 0;
    std::fill(arrived.begin(), arrived.end(), false);
    for (auto& b : buckets) b.arrived = 0;
  }
};

GradReducer::GradReducer(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params, int64_t bucket_bytes, int64_t first_bucket_bytes,
                         bool overlap)
    : st_(std::make_shared<State>()) {
  auto& st = *st_;
  st.pg = std::move(pg);
  st.params = std::move(params);
  const size_t n = st.params.size();
  st.bucket_of.resize(n);
  st.slot_of.resize(n);
  st.arrived.assign(n, false);
  // reverse order: the head's gradients come first out of backward, the stem's last
  int64_t cap = first_bucket_bytes;
  for (size_t k = n; k-- > 0;) {
    const auto& p = st.params[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !st.buckets.empty() && st.buckets.back().dtype == p.scalar_type() &&
                      (st.buckets.back().numel * static_cast<int64_t>(p.element_size()) + bytes <= cap);
    if (!fits) {
      if (!st.buckets.empty()) cap = bucket_bytes;
      st.buckets.emplace_back();
      st.buckets.back().dtype = p.scalar_type();
    }
    auto& b = st.buckets.back();
    st.bucket_of[k] = st.buckets.size() - 1;
    st.slot_of[k] = b.params.size();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
  }
  for (auto& b : st.buckets) b.flat = torch::zeros({b.numel}, torch::TensorOptions().dtype(b.dtype).device(st.pg->collective_device()));
  if (!overlap) return;
  std::weak_ptr<State> weak = st_;
  for (size_t k = 0; k < n; ++k)
    hooks_.push_back(st.params[k].register_hook([weak, k](torch::Tensor g) {
      if (auto s = weak.lock()) s->on_grad(k, g);
    }));
}

GradReducer::~GradReducer() {
  for (size_t k = 0; k < hooks_.size(); ++k) st_->params[k].remove_hook(hooks_[k]);
}

bool GradReducer::serves(const std::vector<torch::Tensor>& params) const {
  if (params.size() != st_->params.size()) return false;
  for (size_t k = 0; k < params.size(); ++k)
    if (!params[k].is_same(st_->params[k])) return false;
  return true;
}

void GradReducer::arm(bool accumulated) {
  std::lock_guard<std::mutex> l(st_->mu);
  st_->reset();
  st_->armed = !hooks_.empty();
  st_->accumulated = accumulated;
}

GradReducer::Stats GradReducer::finish() {
  auto& st = *st_;
  std::lock_guard<std::mutex> l(st.mu);
  Stats stats;
  stats.buckets = static_cast<int>(st.buckets.size());
  stats.started_during_backward = static_cast<int>(st.next);
  const auto t0 = std::chrono::steady_clock::now();
  // parameters whose gradient no hook delivered (no overlap, or backward did not reach them on this rank: zeros
  // there, another rank's may not be), so every rank reduces every bucket
  for (size_t p = 0; p < st.params.size(); ++p)
    if (!st.arrived[p]) st.put(p, nullptr);
  try {
    st.start_ready();
    st.pg->wait_started("gradient all-reduce");
  } catch (...) {
    st.reset();
    throw;
  }
  stats.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.reset();
  torch::NoGradGuard ng;
  const double scale = 1.0 / st.pg->world_size();
  for (auto& b : st.buckets)
    if (scale != 1.0) b.flat.mul_(scale);
  for (size_t p = 0; p < st.params.size(); ++p) {
    auto& g = st.params[p].mutable_grad();
    if (g.defined())
      g.copy_(st.slot(p));
    else
      g = st.slot(p).to(st.params[p].device(), /*non_blocking=*/false, /*copy=*/true);
  }
  return stats;
}

}  // namespace tl
