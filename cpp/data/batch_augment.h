// Deferred augmentation: the pixel-wise random ops at the end of a transform spec (flips, colour jitter, random
// grayscale, random erasing, toTensor, normalize) and MixUp/CutMix, applied to a whole uint8 batch on whatever device
// it is on (CUDA for a CUDA model), after the loader threads decoded, resized and cropped each sample on the CPU.
// The random parameters are drawn on the loader threads from each sample's SampleRng exactly as the per-sample path
// draws them (the per-sample path uses the same draw_tail/apply_tail_one), so both give the same batches; the batched
// ops are plain ATen and are checked on CPU tensors against the per-sample path.
#pragma once
#include <torch/torch.h>

#include <array>
#include <vector>

#include "data/transforms.h"

namespace tl {

// Fully specified by the caller (defaults: lib/data.ts); value-initialised here, which means no mixing.
struct MixConfig {
  double mixup_alpha{};   // 0: off
  double cutmix_alpha{};  // 0: off
  // Probability that a batch is mixed by each method. With both on, each batch first picks MixUp or CutMix (1:1,
  // as timm's switch_prob 0.5) and is then mixed with that method's probability.
  double mixup_p{};
  double cutmix_p{};
  int64_t num_classes{};
};

// The random draws of one tail op for one sample.
struct TailDraw {
  bool flag = false;                  // flip / grayscale / erase applied
  std::array<int, 4> order{0, 1, 2, 3};  // colour jitter: order of brightness, contrast, saturation, hue
  std::array<double, 4> factor{NAN, NAN, NAN, NAN};  // colour jitter factors (NaN: that part is off)
  int64_t top = 0, left = 0, height = 0, width = 0;  // erasing rectangle
};

// MixUp/CutMix of one batch, drawn on the loader thread.
struct MixPlan {
  bool apply = false;
  bool cutmix = false;
  double lam = 1.0;                    // MixUp: weight of the batch itself
  int64_t y1 = 0, y2 = 0, x1 = 0, x2 = 0;  // CutMix box (pasted from the batch rolled by one)
};

struct DeferredAugment {
  std::vector<TransformOp> ops;              // the tail of the spec
  std::vector<std::vector<TailDraw>> draws;  // [op][sample in batch]
  MixPlan mix;
};

// True for ops that can run batched at the end of a spec.
bool is_tail_op(Op kind);
// Index of the first op of the longest suffix of batchable ops whose input has one size (it follows a crop/resize
// to a fixed size, or is the whole spec). ops.size() when nothing can be deferred.
size_t tail_start(const TransformSpec& spec);

// Draws op's parameters from rng as the per-sample path does, for an image of h x w.
TailDraw draw_tail(const TransformOp& op, SampleRng& rng, int64_t h, int64_t w);
// Applies one tail op to one image [C, H, W] (the per-sample path).
torch::Tensor apply_tail_one(torch::Tensor img, const TransformOp& op, const TailDraw& d);

// Draws MixUp/CutMix for a batch of n images of h x w; returns the plan and mixes the labels (one-hot, float).
MixPlan draw_mix(const MixConfig& cfg, SampleRng& rng, bool cutmix, int64_t h, int64_t w);
torch::Tensor mix_labels(const torch::Tensor& labels, int64_t num_classes, const MixPlan& plan);
// Mixes a float batch [B, C, H, W] in place.
void apply_mix(torch::Tensor& images, const MixPlan& plan);

// Applies the deferred tail and mix to a uint8 batch [B, 3, H, W] on its device; returns the float batch.
torch::Tensor apply_deferred(const torch::Tensor& images, const DeferredAugment& aug);

}  // namespace tl
