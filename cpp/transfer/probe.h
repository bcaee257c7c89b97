// What frozen features say about a dataset: a linear probe (softmax regression, L-BFGS, L2 chosen by
// cross-validation), k-NN accuracy and LogME. Inputs: float features [N, D] and int64 labels [N], any device.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "models/classifier.h"

namespace tl {

// Fully specified by the caller (defaults live in lib/transfer.ts).
struct ProbeConfig {
  std::vector<double> l2_grid;  // penalties l2/2·|W|² tried on standardised features; the best cross-validated wins
  int folds{};                  // cross-validation folds (>= 2)
  int max_iter{};               // L-BFGS iterations per fit
  uint64_t seed{};              // fold assignment
  int64_t max_cv_samples{};     // cross-validation on at most this many samples (the final fit uses all)
};

struct LinearProbe {
  torch::Tensor weight;  // float [C, D], on the raw features (standardisation folded in)
  torch::Tensor bias;    // float [C]
  double l2 = 0;
  double cv_accuracy = 0;  // cross-validated accuracy at the chosen l2
  double train_accuracy = 0;
  double train_loss = 0;  // mean cross-entropy on the training features (without the penalty)
};

LinearProbe fit_linear_probe(const torch::Tensor& x, const torch::Tensor& y, int64_t num_classes, const ProbeConfig& cfg);

// Copies the probe into the model's linear head; throws when the head is not one Linear layer.
void apply_linear_probe(ClassifierImpl& model, const LinearProbe& probe);

// Nearest-prototype classifier as a linear head (few-shot classes without training). Each embedding is L2-normalised,
// a class's prototype is the normalised mean of its examples' normalised embeddings, and a class scores
// s·cos(x, p_c). Cosine scores without a bias keep their argmax when the query is not normalised, so the head is one
// bias-free Linear layer with rows p_c·s/r (r: the mean embedding norm of the examples): predictions are exactly the
// nearest prototype, probabilities softmax(s·cos·|x|/r).
struct PrototypeFit {
  torch::Tensor weight;       // float [C, D]
  double scale = 0;           // s
  double loo_accuracy = -1;   // leave-one-out nearest-prototype accuracy over classes with >= 2 examples; -1: none
  int64_t loo_samples = 0;
  std::vector<int64_t> fitted;  // classes whose prototype came from the examples
};
// `base` [C, D] (or undefined): the rows of classes without examples are kept from it, and every new row gets the
// kept rows' norm (one scale for the whole head). `scale` > 0 is used as given; otherwise, with no kept rows, the
// leave-one-out cross-entropy over the examples picks it (10 when no class has two examples).
PrototypeFit fit_prototypes(const torch::Tensor& x, const torch::Tensor& y, int64_t num_classes, const torch::Tensor& base,
                            double scale);

// k-nearest-neighbour accuracy (cosine similarity, votes weighted by exp(sim / 0.07)), cross-validated over `folds`.
double knn_accuracy(const torch::Tensor& x, const torch::Tensor& y, int64_t num_classes, int k, int folds, uint64_t seed);

// LogME (You et al., ICML 2021): the log marginal evidence per sample of a Bayesian linear regression from the
// features to each one-hot target, maximised over its two precisions, averaged over the classes. Higher is better.
double logme(const torch::Tensor& x, const torch::Tensor& y, int64_t num_classes);

// Fold of every sample (0..folds-1), a seeded shuffle dealt round-robin.
std::vector<int> fold_assignment(int64_t n, int folds, uint64_t seed);

}  // namespace tl
