#include "data/dataset.h"

#include <algorithm>
#include <filesystem>

namespace fs = std::filesystem;

namespace tl {

const std::vector<std::string>& default_extensions() {
  // What the decoder reads. torchvision's list also has .ppm .bmp .pgm .tif .tiff .webp: such files are listed in
  // `skipped` as unsupported rather than failing later as undecodable.
  static const std::vector<std::string> kExt = {".jpg", ".jpeg", ".png"};
  return kExt;
}

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
bool has_extension(const std::string& name, const std::vector<std::string>& exts) {
  std::string n = lower(name);
  for (const auto& e : exts) {
    std::string le = lower(e);
    if (n.size() >= le.size() && n.compare(n.size() - le.size(), le.size(), le) == 0) return true;
  }
  return false;
}
}  // namespace

FolderScan scan_image_folder(const std::string& root, const std::vector<std::string>& extensions) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw DatasetError(root + ": image folder does not exist or is not a directory");
  FolderScan scan;
  for (const auto& entry : fs::directory_iterator(root, fs::directory_options::follow_directory_symlink, ec))
    if (entry.is_directory()) scan.classes.push_back(entry.path().filename().string());
  if (ec) throw DatasetError(root + ": cannot list folder: " + ec.message());
  std::sort(scan.classes.begin(), scan.classes.end());
  if (scan.classes.empty()) throw DatasetError(root + ": no class folders found (expected root/<class>/<image>)");
  for (size_t label = 0; label < scan.classes.size(); ++label) {
    const fs::path dir = fs::path(root) / scan.classes[label];
    std::vector<std::pair<std::string, std::string>> files;  // (folder, name): os.walk order after sorting
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec)) files.emplace_back(it->path().parent_path().string(), it->path().filename().string());
    }
    std::sort(files.begin(), files.end());
    size_t before = scan.samples.size();
    for (const auto& f : files) {
      std::string path = (fs::path(f.first) / f.second).string();
      if (has_extension(f.second, extensions))
        scan.samples.push_back(Sample{path, nullptr, static_cast<int64_t>(label)});
      else
        scan.skipped.push_back(Skipped{path, "extension not in " + std::to_string(extensions.size()) + " allowed image extensions"});
    }
    if (scan.samples.size() == before)
      throw DatasetError(dir.string() + ": class folder '" + scan.classes[label] + "' holds no images with a supported extension");
  }
  return scan;
}

bool DecodedCache::get(int64_t index, torch::Tensor* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(index);
  if (it == items_.end()) return false;
  *out = it->second;
  return true;
}

void DecodedCache::put(int64_t index, const torch::Tensor& img) {
  int64_t n = img.numel() * img.element_size();
  std::lock_guard<std::mutex> lock(mu_);
  if (items_.count(index) || bytes_ + n > max_bytes_) return;  // full: keep what is cached (no thrashing)
  items_[index] = img;
  bytes_ += n;
}

torch::Tensor ImageDataset::decode(size_t index, DecodedCache* cache) const {
  torch::Tensor img;
  if (cache && cache->get(static_cast<int64_t>(index), &img)) return img;
  const Sample& s = samples_.at(index);
  img = s.bytes ? decode_image(s.bytes->data(), s.bytes->size(), decode_, s.path) : decode_file(s.path, decode_);
  if (cache) cache->put(static_cast<int64_t>(index), img);
  return img;
}

torch::Tensor ImageDataset::load(size_t index, SampleRng& rng, DecodedCache* cache, const TransformSpec* override_spec,
                                 const torch::Tensor* out) const {
  return apply_transforms(override_spec ? *override_spec : transform_, decode(index, cache), rng, out);
}

}  // namespace tl
