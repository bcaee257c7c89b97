// Image datasets: an image-folder scan (torchvision's ImageFolder order), explicit lists, and in-memory images.
#pragma once
#include <torch/torch.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/decode.h"
#include "data/transforms.h"

namespace tl {

struct Sample {
  std::string path;                        // file, or a label for in-memory data ("<buffer 3>")
  std::shared_ptr<std::vector<uint8_t>> bytes;  // encoded image held in memory (optional)
  int64_t label = -1;
};

struct Skipped {
  std::string path;
  std::string reason;
};

// torchvision's IMG_EXTENSIONS.
const std::vector<std::string>& default_extensions();

struct FolderScan {
  std::vector<std::string> classes;
  std::vector<Sample> samples;
  std::vector<Skipped> skipped;
};

// Classes are the sorted sub-folder names; files are walked in os.walk order (sorted folders, sorted names);
// files whose extension is not listed are reported in `skipped`. Throws DatasetError for a missing root,
// no class folders, or an empty class.
FolderScan scan_image_folder(const std::string& root, const std::vector<std::string>& extensions);

class DatasetError : public std::runtime_error {
 public:
  explicit DatasetError(const std::string& msg) : std::runtime_error(msg) {}
};

// A bounded cache of decoded images (uint8 [3, H, W]) keyed by sample index.
class DecodedCache {
 public:
  explicit DecodedCache(int64_t max_bytes) : max_bytes_(max_bytes) {}
  bool get(int64_t index, torch::Tensor* out);
  void put(int64_t index, const torch::Tensor& img);
  int64_t bytes() const { return bytes_; }
  int64_t max_bytes() const { return max_bytes_; }

 private:
  std::mutex mu_;
  std::map<int64_t, torch::Tensor> items_;
  int64_t bytes_ = 0;
  int64_t max_bytes_;
};

// Samples plus how to turn one into a tensor. Shared by loaders (and their threads).
class ImageDataset {
 public:
  ImageDataset(std::vector<Sample> samples, TransformSpec transform, DecodeOptions decode)
      : samples_(std::move(samples)), transform_(std::move(transform)), decode_(decode) {}
  size_t size() const { return samples_.size(); }
  const Sample& sample(size_t i) const { return samples_[i]; }
  const TransformSpec& transform() const { return transform_; }
  // Decoded (cached when a cache is given) and transformed sample; throws ImageError naming the file.
  torch::Tensor load(size_t index, SampleRng& rng, DecodedCache* cache, const TransformSpec* override_spec = nullptr,
                     const torch::Tensor* out = nullptr) const;
  torch::Tensor decode(size_t index, DecodedCache* cache) const;

 private:
  std::vector<Sample> samples_;
  TransformSpec transform_;
  DecodeOptions decode_;
};

}  // namespace tl
