#include "runtime/predict.h"


namespace tl {

std::vector<Prediction> predict(ModelRunner& runner, std::shared_ptr<const ImageDataset> images, int64_t topk,
                                Precision precision, const LoaderConfig& cfg, bool hflip_tta) {
  Loader loader(images, cfg, nullptr);
  loader.start(0);
  std::vector<Prediction> out;
  Batch batch;
  const int64_t k = std::min<int64_t>(topk, runner.config().num_classes);
  while (loader.next(&batch)) {
    auto logits = runner.forward(batch.images, precision, false);
    if (hflip_tta) logits = (logits + runner.forward(batch.images.flip({3}), precision, false)) / 2;
    batch.release();  // the batch memory serves the next batch
    auto probs = torch::softmax(logits, 1);
    auto top = probs.topk(k, 1);
    auto values = std::get<0>(top).contiguous();
    auto indices = std::get<1>(top).contiguous();
    for (int64_t i = 0; i < values.size(0); ++i) {
      Prediction p;
      for (int64_t j = 0; j < k; ++j) {
        p.index.push_back(indices[i][j].item<int64_t>());
        p.probability.push_back(values[i][j].item<float>());
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

torch::Tensor transform_sample(const Sample& sample, const TransformSpec& spec, uint64_t seed, const DecodeOptions& decode) {
  ImageDataset ds({sample}, spec, decode);
  SampleRng rng(seed, 0, 0);
  return ds.load(0, rng, nullptr);
}

}  // namespace tl
