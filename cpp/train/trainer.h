// Training session over a ModelRunner: freezing with BatchNorm kept in eval, parameter groups, optimizers,
// loss (label smoothing, soft targets), clipping, accumulation, precision; optimizer state save/load.
#pragma once
#include <memory>

#include "data/loader.h"
#include "dist/process_group.h"
#include "dist/reducer.h"
#include "runtime/model_runner.h"
#include "train/grad_scaler.h"
#include "transfer/domain.h"

namespace tl {

// Fully specified by the caller: the defaults live in lib/trainer.ts (TRAINER_DEFAULTS) and the binding fills every
// field or refuses the call; the members are only value-initialised here.
struct TrainConfig {
  std::string optimizer;  // sgd | adam | adamw | rmsprop
  double lr{};            // head
  double backbone_lr{};   // trainable stages before the head
  double weight_decay{};
  bool no_decay_norm_bias{};  // 1-D parameters (norm weights, biases) get no weight decay
  double momentum{};
  bool nesterov{};
  double dampening{};
  double beta1{}, beta2{}, eps{};
  double alpha{};           // rmsprop
  size_t train_from{};      // index of the first trainable stage
  // BatchNorm kept in eval mode (running statistics frozen): none, those of frozen stages, or all
  enum class BnFreeze { None, Frozen, All } freeze_bn_stats{};
  double label_smoothing{};
  double clip_grad_norm{};  // 0: off
  int accumulate{};         // batches per optimizer step (>= 1)
  Precision precision{Precision::FP32};
  GradScalerConfig loss_scale;  // dynamic loss scaling (fp16)
};

struct StepResult {
  double loss = 0;     // mean over the batch
  int64_t correct = 0; // argmax == label (hard labels, or argmax of soft labels)
  int64_t count = 0;
  bool stepped = false;
  bool skipped = false;     // an optimizer step was due but skipped: inf/NaN gradients under loss scaling
  double loss_scale = 1.0;  // the scale after this step
  double adapt_loss = 0;         // domain adaptation: the adaptation loss (weighted)
  double domain_accuracy = -1;   // DANN: the domain classifier's accuracy on the batch
  // data-parallel: gradient buckets all-reduced, how many of them started during the backward pass (overlap), and
  // the seconds the step then waited for communication
  int buckets = 0;
  int buckets_during_backward = 0;
  double allreduce_wait_s = 0;
};

struct EvalResult {
  double loss_sum = 0;
  torch::Tensor logits;  // float CPU [B, C]
  torch::Tensor labels;  // int64 CPU [B]
};

class TrainSession {
 public:
  TrainSession(std::shared_ptr<ModelRunner> runner, TrainConfig cfg);
  StepResult step(const Batch& batch);
  // Domain adaptation (set_adaptation first): one step on a labelled source batch and an unlabelled target batch;
  // `lambda` is the schedule's factor of the adaptation (see DomainAdapterImpl::loss).
  StepResult step_adapt(const Batch& source, const Batch& target, double lambda);
  // Adds the adapter (a DANN domain classifier trains with the head's rate); keeps the optimizer's state.
  void set_adaptation(const AdaptConfig& cfg);
  EvalResult eval(const Batch& batch, bool hflip_tta);
  // Learning rates per group kind: head, backbone.
  void set_lrs(double head, double backbone);
  // Changes which stages train (gradual unfreezing); keeps optimizer state of parameters that stay trainable.
  void set_train_from(size_t stage);
  // Feature cache: stores what the frozen stages (those before train_from) output for a batch as view `view` — the
  // pooled features when only the head trains, else the feature map at the first trainable stage (frozen-prefix
  // cache; needs the frozen stages' BatchNorm statistics frozen); returns bytes held.
  int64_t cache_batch(const Batch& batch, int view);
  // One epoch of training the stages from train_from on (and the head) over cached prefix outputs, in the order a loader with the same settings uses.
  // Data-parallel: each rank trains on its shard of that order (the process group's rank and size).
  StepResult train_cached_epoch(uint64_t epoch, int64_t dataset_size, int64_t batch_size, bool shuffle, bool drop_last,
                                uint64_t seed, int views, const std::vector<std::pair<double, double>>& lrs);
  void clear_cache();
  // Validation through the feature cache: backbone outputs of deterministic validation batches, kept once.
  int64_t cache_eval_batch(const Batch& batch);
  EvalResult eval_cached(std::vector<int64_t>* indices);
  int64_t cache_bytes() const { return cache_bytes_; }
  void save_optimizer(const std::string& path) const;
  void load_optimizer(const std::string& path);
  int64_t trainable_parameters() const;
  // Data-parallel: gradients are averaged over the group's ranks before every optimizer step by a GradReducer (in
  // buckets of `bucket_bytes`; `overlap`: each bucket's all-reduce starts during the backward pass as soon as its
  // gradients are ready, else all after it); the parameters and buffers are made rank 0's now.
  void set_process_group(std::shared_ptr<ProcessGroup> pg, int64_t bucket_bytes, bool overlap);
  // Every parameter and buffer made rank `root`'s (after rank 0 restored its best weights).
  void broadcast_model(int root);
  // BatchNorm running statistics averaged over the ranks (DDP keeps them per rank otherwise).
  void average_batchnorm_stats();
  ProcessGroup* process_group() const { return pg_.get(); }

 private:
  void apply_freezing();
  // `cached`: x is what the frozen prefix output (the cache's stage), else images.
  StepResult run_step(const torch::Tensor& x, const torch::Tensor& y, bool cached, const torch::Tensor* target = nullptr,
                      double lambda = 0);
  void rebuild_optimizer();
  void build_optimizer();
  void set_train_mode();
  // Sets cache_stage_ to train_from for an empty cache; throws when caching cannot serve this configuration.
  void check_cache_stage();
  std::shared_ptr<ModelRunner> runner_;
  TrainConfig cfg_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::vector<bool> group_is_head_;
  std::vector<torch::Tensor> trainable_;
  std::vector<std::string> trainable_names_;
  GradScaler scaler_;
  int pending_ = 0;
  std::shared_ptr<ProcessGroup> pg_;
  DomainAdapter adapter_{nullptr};
  int64_t bucket_bytes_ = 0;
  bool overlap_ = false;
  std::unique_ptr<GradReducer> reducer_;  // rebuilt when the trainable parameters change
  std::vector<std::map<int64_t, torch::Tensor>> cache_;  // [view][sample index] -> prefix output at cache_stage_
  std::map<int64_t, int64_t> cache_labels_;
  std::vector<std::pair<torch::Tensor, Batch>> eval_cache_;  // (features, batch labels/indices)
  int64_t cache_bytes_ = 0;
  size_t cache_stage_ = 0;  // the stage whose input the cache holds (train_from when it was filled)
};

}  // namespace tl
