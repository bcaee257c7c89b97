// Image decoding to 8-bit RGB, as PIL's convert('RGB') does: JPEG (libjpeg-turbo), PNG (libpng).
#pragma once
#include <torch/torch.h>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tl {

// A file that is not a decodable image (corrupt, truncated, unsupported, over the pixel limit).
class ImageError : public std::runtime_error {
 public:
  explicit ImageError(const std::string& msg) : std::runtime_error(msg) {}
};

// Fully specified by the caller: the defaults live in lib/decode-options.ts; value-initialised here.
struct DecodeOptions {
  int64_t max_pixels{};  // larger images are refused (lib/: PIL's decompression-bomb limit, 2 x 89,478,485)
  // JPEG DCT-domain downscaling: decode at the smallest scale 1/8..1 whose shorter side stays >= this.
  // 0 disables it (exact decode).
  int64_t min_short_side{};
  // false: decode what PIL decodes (libjpeg's "corrupt data" warnings, PNG image-data checksums are tolerated;
  // truncated files are refused). true: any decoder warning refuses the file.
  bool strict{};
};

// Returns a uint8 tensor [3, H, W]. `what` names the source (file path) in error messages.
torch::Tensor decode_image(const uint8_t* data, size_t size, const DecodeOptions& opts, const std::string& what);
torch::Tensor decode_file(const std::string& path, const DecodeOptions& opts);

// Encodes a uint8 tensor [3, H, W] (RGB) or [1, H, W] (grey) as a baseline JPEG of the given quality (1..100).
std::vector<uint8_t> encode_jpeg(const torch::Tensor& chw, int quality);

}  // namespace tl
