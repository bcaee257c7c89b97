#include "models/registry.h"

#include <algorithm>
#include <stdexcept>

#include "models/resnet.h"
#include "models/squeezenet.h"

namespace tl {

const std::vector<std::string>& architectures() {
  static const std::vector<std::string> kNames = {
      "resnet18",        "resnet34",         "resnet50",         "resnet101",       "resnet152",
      "wide_resnet50_2", "wide_resnet101_2", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
      "squeezenet1_1"};
  return kNames;
}

const std::vector<std::string>& head_kinds() {
  static const std::vector<std::string> kKinds = {"torchvision", "linear"};
  return kKinds;
}

Classifier create_model(const std::string& arch, int64_t num_classes, double dropout, const std::string& head) {
  if (num_classes < 1) throw std::invalid_argument("numClasses must be >= 1, got " + std::to_string(num_classes));
  if (std::find(head_kinds().begin(), head_kinds().end(), head) == head_kinds().end())
    throw std::invalid_argument("head must be 'torchvision' or 'linear', got '" + head + "'");
  ResNetSpec spec;
  if (resnet_spec(arch, &spec)) return std::make_shared<ResNetImpl>(spec, num_classes, dropout);
  if (arch == "squeezenet1_1") return std::make_shared<SqueezeNetImpl>(num_classes, dropout, head == "linear");
  throw std::invalid_argument("unknown arch '" + arch + "'");
}

}  // namespace tl
