// Name -> model constructor for every architecture of the zoo.
#pragma once
#include "models/classifier.h"

namespace tl {

const std::vector<std::string>& architectures();
bool is_architecture(const std::string& arch);
// Throws std::invalid_argument naming the arch when it is unknown.
Classifier create_model(const std::string& arch, int64_t num_classes, double dropout);
// The default dropout the arch uses when the caller gives none (0.5 for squeezenet, 0 for ResNets).
double default_dropout(const std::string& arch);

}  // namespace tl
