// Gradient averaging for data-parallel training, as DDP's reducer does it: the trainable parameters are grouped into
// buckets in reverse order (the order backward produces their gradients; the first bucket small, so communication
// starts early). With overlap, each bucket's all-reduce starts from a gradient hook as soon as the last of its
// gradients is computed, strictly in bucket order (every rank issues the same collectives in the same order), while
// backward goes on; without, finish() starts them all after backward. Either way finish() leaves the ranks' mean.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "dist/process_group.h"

namespace tl {

class GradReducer {
 public:
  // `params`: the trainable parameters (their order defines the buckets); `first_bucket_bytes` caps the first
  // bucket (DDP: 1 MiB), `bucket_bytes` the others; `overlap`: register the gradient hooks that start buckets
  // during backward.
  GradReducer(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params, int64_t bucket_bytes, int64_t first_bucket_bytes,
              bool overlap);
  ~GradReducer();  // removes its hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;
  // Whether this reducer serves exactly these parameters (the trainable set changes with gradual unfreezing).
  bool serves(const std::vector<torch::Tensor>& params) const;
  // Overlap: the next backward pass ends in an optimizer step, so its gradient hooks start the buckets' all-reduces
  // (backward passes of accumulated batches before it only accumulate, as DDP's no_sync). `accumulated`: earlier
  // batches of this step left gradients in .grad, to be added (false skips reading .grad).
  void arm(bool accumulated);
  struct Stats {
    int buckets = 0;                  // all-reduces of this step
    int started_during_backward = 0;  // of those, started from gradient hooks (the rest: by finish)
    double wait_seconds = 0;          // finish()'s time starting the rest and blocked on communication
  };
  // After the step's last backward pass: starts the buckets not started yet (a parameter whose gradient did not come
  // through a hook contributes its .grad, or zeros when it has none), waits for every all-reduce, and leaves the mean
  // over the ranks in each parameter's .grad.
  Stats finish();

 private:
  struct State;
  std::shared_ptr<State> st_;
  std::vector<unsigned> hooks_;
};

}  // namespace tl
