// Gradient averaging overlapped with the backward pass, as DDP's reducer does it: the trainable parameters are
// grouped into buckets in reverse order (the order backward produces their gradients; the first bucket small, so
// communication starts early), and each bucket's all-reduce starts as soon as the last of its gradients is computed,
// strictly in bucket order (every rank issues the same collectives in the same order), while backward goes on.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <vector>

#include "dist/process_group.h"

namespace tl {

class GradReducer {
 public:
  // `params`: the trainable parameters (their order defines the buckets); `first_bucket_bytes` caps the first
  // bucket (DDP: 1 MiB), `bucket_bytes` the others.
  GradReducer(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params, int64_t bucket_bytes, int64_t first_bucket_bytes);
  ~GradReducer();  // removes its hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;
  // Whether this reducer serves exactly these parameters (the trainable set changes with gradual unfreezing).
  bool serves(const std::vector<torch::Tensor>& params) const;
  // The next backward pass ends in an optimizer step: its gradient hooks start the buckets' all-reduces. (Backward
  // passes of accumulated batches before it only accumulate, as DDP's no_sync.)
  void arm();
  // After that backward pass: starts the buckets whose gradients did not all arrive (a parameter backward did not
  // reach contributes its accumulated gradient or zeros), waits for every all-reduce, and leaves the mean over the
  // ranks in each parameter's .grad.
  struct Stats {
    int buckets = 0;                  // all-reduces of this step
    int started_during_backward = 0;  // of those, started from gradient hooks (the rest: by finish)
    double wait_seconds = 0;          // finish()'s time blocked on communication (what overlap did not hide)
  };
  Stats finish();
  size_t buckets() const;

 private:
  struct State;
  std::shared_ptr<State> st_;
  std::vector<unsigned> hooks_;
};

}  // namespace tl
