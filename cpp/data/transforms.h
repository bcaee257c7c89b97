// Per-sample image transforms with torchvision's semantics (tensor backend), driven by a JSON spec.
#pragma once
#include <torch/torch.h>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tl {

// Deterministic per-sample randomness: the same (seed, epoch, index) gives the same draws on any thread.
class SampleRng {
 public:
  SampleRng(uint64_t seed, uint64_t epoch, uint64_t index);
  double uniform(double lo, double hi);            // [lo, hi)
  int64_t randint(int64_t lo, int64_t hi_excl);    // [lo, hi)
  bool bernoulli(double p) { return uniform(0, 1) < p; }
  std::vector<int> permutation(int n);
  uint64_t next() { return gen_(); }

 private:
  std::mt19937_64 gen_;
};

enum class Interp { Nearest, Bilinear, Bicubic };

// The transform ops, defined here once: each kind with the name the TS builders write as `op` (the addon exports
// the names; a unit test checks lib/transform.ts against them). Parsed once per spec, not compared per sample.
#define TL_TRANSFORM_OPS(X)                                                                                     \
  X(Resize, "resize") X(CenterCrop, "centerCrop") X(RandomCrop, "randomCrop") X(RandomResizedCrop, "randomResizedCrop") \
  X(RandomRotation, "randomRotation") X(RandomHorizontalFlip, "randomHorizontalFlip")                          \
  X(RandomVerticalFlip, "randomVerticalFlip") X(ColorJitter, "colorJitter") X(RandomGrayscale, "randomGrayscale") \
  X(RandomErasing, "randomErasing") X(ToTensor, "toTensor") X(Normalize, "normalize")
enum class Op {
#define TL_OP_ENUM(kind, name) kind,
  TL_TRANSFORM_OPS(TL_OP_ENUM)
#undef TL_OP_ENUM
};
const char* op_name(Op op);
std::vector<std::string> op_names();
// true for ops that draw random parameters per sample
bool is_random_op(Op op);

// One op of a spec, every field set by parse_transform_spec from the JSON lib/transform.ts writes (no defaults here:
// the TS builders hold them).
struct TransformOp {
  Op kind{};
  // resize / crops
  std::vector<int64_t> size;  // [s] shorter side, or [h, w]
  Interp interp{};
  bool antialias{};
  std::vector<int64_t> padding;  // randomCrop: [l, t, r, b]
  bool pad_if_needed{};
  double fill{};
  std::vector<double> scale, ratio;
  // rotation
  double deg_min{}, deg_max{};
  // flips, grayscale, erasing
  double p{};
  // color jitter: [min, max] factors; hue [min, max]; empty: not jittered
  std::vector<double> brightness, contrast, saturation, hue;
  // normalize
  std::vector<double> mean, std;
  double erase_value{};
};

struct TransformSpec {
  std::vector<TransformOp> ops;
  bool deterministic() const;
};

// Parses the JSON spec made by the TS Transform builders; throws std::invalid_argument naming the bad field.
TransformSpec parse_transform_spec(const std::string& json);

// Applies the spec to a uint8 [3, H, W] image. Returns what the last op produced (float after toTensor).
// `out`, when given, is a float tensor of the expected output shape (a slot of a batch): a final
// toTensor + normalize writes into it directly and the returned tensor is `out` itself.
torch::Tensor apply_transforms(const TransformSpec& spec, torch::Tensor img, SampleRng& rng, const torch::Tensor* out = nullptr);

// Building blocks (exposed for tests and other pipelines).
torch::Tensor resize(const torch::Tensor& img, std::vector<int64_t> size, Interp interp, bool antialias);
torch::Tensor crop(const torch::Tensor& img, int64_t top, int64_t left, int64_t h, int64_t w);
torch::Tensor center_crop(const torch::Tensor& img, int64_t h, int64_t w);
torch::Tensor rotate(const torch::Tensor& img, double angle, Interp interp, double fill);
// torchvision's _blend: (ratio * a + (1 - ratio) * b) clamped to the dtype's range, cast back (uint8 truncates).
torch::Tensor blend_images(const torch::Tensor& a, const torch::Tensor& b, double ratio);
// ITU-R 601-2 luma of an RGB image [3, H, W], as 1 or 3 channels, in its dtype.
torch::Tensor rgb_to_grayscale(const torch::Tensor& img, int channels);
torch::Tensor adjust_hue(const torch::Tensor& img, double factor);

}  // namespace tl
