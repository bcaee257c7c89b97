// Image decoding (JPEG, PNG; lenient or strict by the first byte) and a training transform pipeline on the result.
// The pixel limit is small so that a header claiming a huge image is refused quickly (the limit is what is tested).
#include "common.h"
#include "data/decode.h"
#include "data/transforms.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::init_once();
  if (size < 1) return 0;
  static const tl::TransformSpec spec = tl::parse_transform_spec(
      R"([{"op":"randomResizedCrop","size":[24],"scale":[0.08,1],"ratio":[0.75,1.3333333333333333],"interpolation":"bilinear","antialias":true},{"op":"randomHo)"
      R"(rizontalFlip","p":0.5},{"op":"colorJitter","brightness":[0.6,1.4],"contrast":[0.6,1.4],"saturation":[0.6,1.4],"hue":[-0.1,0.1]},{"op":"toTensor"},{"op":"normalize","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}])");
  tl::DecodeOptions opts;
  opts.max_pixels = 1 << 22;
  opts.strict = data[0] & 1;
  opts.min_short_side = (data[0] & 2) ? 16 : 0;
  try {
    auto img = tl::decode_image(data + 1, size - 1, opts, "fuzz");
    tl::SampleRng rng(1, 0, size);
    auto out = tl::apply_transforms(spec, img, rng);
    if (out.size(1) != 24 || out.size(2) != 24) std::abort();
  } catch (const tl::ImageError&) {
  }
  return 0;
}
