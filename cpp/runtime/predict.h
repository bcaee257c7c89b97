// Classification of image files/buffers: decode + transform on loader threads, batched forward, softmax top-k.
#pragma once
#include "data/dataset.h"
#include "data/loader.h"
#include "runtime/model_runner.h"

namespace tl {

struct Prediction {
  std::vector<int64_t> index;
  std::vector<float> probability;
};

// `loader`: batch size, workers and prefetch (in order, no shuffling or mixing: the rest stays value-initialised).
std::vector<Prediction> predict(ModelRunner& runner, std::shared_ptr<const ImageDataset> images, int64_t topk,
                                Precision precision, const LoaderConfig& loader, bool hflip_tta);

// One sample through a transform spec (deterministic for a given seed): for inspection and parity checks.
torch::Tensor transform_sample(const Sample& sample, const TransformSpec& spec, uint64_t seed, const DecodeOptions& decode);

}  // namespace tl
