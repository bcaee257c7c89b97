// Name -> model constructor for every architecture of the zoo.
#pragma once
#include "models/classifier.h"

namespace tl {

const std::vector<std::string>& architectures();
// Head kinds: "torchvision" (the arch's own) or "linear" (one Linear layer on the pooled features; the same for
// ResNets, whose head is already one).
const std::vector<std::string>& head_kinds();
// Throws std::invalid_argument naming the arch (or head) when it is unknown.
Classifier create_model(const std::string& arch, int64_t num_classes, double dropout, const std::string& head);

}  // namespace tl
