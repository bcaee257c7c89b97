// Name -> model constructor for every architecture of the zoo.
#pragma once
#include "models/classifier.h"

namespace tl {

const std::vector<std::string>& architectures();
// Throws std::invalid_argument naming the arch when it is unknown.
Classifier create_model(const std::string& arch, int64_t num_classes, double dropout);

}  // namespace tl
