// Data-parallel collectives on PyTorch's c10d: TCPStore rendezvous, then ProcessGroupGloo (CPU tensors; CUDA tensors
// are staged through host memory) or, in CUDA builds with NCCL, ProcessGroupNCCL (tensors on the model's GPU). The
// c10d headers stay in process_group.cpp.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace tl {

// A collective or the rendezvous failed: a rank left, timed out, or the set-up is wrong.
class DistributedError : public std::runtime_error {
 public:
  explicit DistributedError(const std::string& msg) : std::runtime_error(msg) {}
};

// Fully specified by the caller (defaults: lib/distributed.ts); value-initialised here.
struct DistConfig {
  int rank{};
  int world_size{};
  std::string master_addr;
  int master_port{};
  int64_t timeout_ms{};  // rendezvous and every collective
  std::string backend;   // "gloo" | "nccl" (ProcessGroup::choose_backend resolves "auto")
  std::string device;    // the model's device ("cpu", "cuda:1"): NCCL reduces there
};

class ProcessGroup {
 public:
  // Rendezvous: rank 0 serves the TCPStore at master_addr:master_port, every rank joins; returns when all have.
  explicit ProcessGroup(const DistConfig& cfg);
  ~ProcessGroup();
  // The backend for `requested` ("auto" | "gloo" | "nccl") and a model on `device`: "auto" is NCCL for a CUDA model
  // in a build with NCCL, else Gloo. Throws invalid_argument naming the option for NCCL on the CPU or without NCCL.
  static std::string choose_backend(const std::string& requested, const torch::Device& device);
  // The backends this build has: "gloo" (libgloo-dev's headers at build time), "nccl"; empty: no distributed training.
  static std::vector<std::string> backends();
  // Where the collectives want their tensors: the model's GPU with NCCL, the CPU with Gloo.
  torch::Device collective_device() const { return collective_device_; }
  int rank() const { return rank_; }
  int world_size() const { return world_; }
  // In place: every tensor becomes rank `root`'s (flattened into buckets of at most `bucket_bytes`).
  void broadcast(const std::vector<torch::Tensor>& tensors, int root, int64_t bucket_bytes);
  // In place: every tensor becomes the mean over the ranks (bucketed as above; float tensors only).
  void allreduce_mean(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes);
  // Overlapped reduction: starts a sum all-reduce of `flat` (contiguous, on collective_device()) in place and
  // returns at once; wait_started() waits for every started one in order (DistributedError naming the lost rank).
  // Every rank must start the same tensors in the same order.
  void start_sum(const torch::Tensor& flat);
  void wait_started(const char* what);
  // Sums of `values` over the ranks (metrics).
  std::vector<double> allreduce_sum(const std::vector<double>& values);
  // After a failed collective: which ranks stopped sending heartbeats ("rank 1 stopped answering …"), or "" when
  // none can be named.
  std::string lost_ranks() const;

 private:
  // Throws the DistributedError for a failed collective `what`, naming the lost ranks when heartbeats tell.
  [[noreturn]] void fail(const char* what, const std::exception& e) const;
  // Runs `op` (a c10d collective) over buckets of `tensors` and waits for it; the result is multiplied by `scale`.
  template <class Op>
  void bucketed(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes, const char* what, double scale, Op op);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_ = 1;
  int64_t timeout_ms_ = 0;
  torch::Device collective_device_ = torch::kCPU;
};

}  // namespace tl
