#include "transfer/probe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

namespace tl {
namespace {

struct Standardized {
  torch::Tensor x, mean, scale;
};

Standardized standardize(const torch::Tensor& x) {
  auto mean = x.mean(0);
  auto scale = x.std(0, /*unbiased=*/false).clamp_min(1e-6);
  return {(x - mean) / scale, mean, scale};
}

// Softmax regression on standardised double features; returns W [D, C], b [C].
std::pair<torch::Tensor, torch::Tensor> fit_softmax(const torch::Tensor& xs, const torch::Tensor& y, int64_t num_classes,
                                                    double l2, int max_iter) {
  torch::AutoGradMode grad(true);
  auto opts = xs.options();
  auto w = torch::zeros({xs.size(1), num_classes}, opts).requires_grad_(true);
  auto b = torch::zeros({num_classes}, opts).requires_grad_(true);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(max_iter)
                                      .max_eval(max_iter * 5 / 4)
                                      .tolerance_grad(1e-6)
                                      .tolerance_change(1e-9)
                                      .history_size(20)
                                      .line_search_fn("strong_wolfe"));
  auto closure = [&] {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(torch::addmm(b, xs, w), y) + 0.5 * l2 * w.pow(2).sum();
    loss.backward();
    return loss;
  };
  opt.step(closure);
  return {w.detach(), b.detach()};
}

double accuracy(const torch::Tensor& logits, const torch::Tensor& y) {
  return logits.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
}

torch::Tensor select(const torch::Tensor& t, const std::vector<int64_t>& rows) {
  return t.index_select(0, torch::tensor(rows, torch::kLong).to(t.device()));
}

void check_inputs(const torch::Tensor& x, const torch::Tensor& y, int64_t num_classes) {
  if (x.dim() != 2 || y.dim() != 1 || x.size(0) != y.size(0))
    throw std::invalid_argument("features must be [N, D] and labels [N]");
  if (x.size(0) < 2) throw std::invalid_argument("at least 2 samples are needed, got " + std::to_string(x.size(0)));
  if (num_classes < 2) throw std::invalid_argument("at least 2 classes are needed");
  if (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= num_classes)
    throw std::invalid_argument("labels must lie in [0, " + std::to_string(num_classes - 1) + "]");
}

}  // namespace

std::vector<int> fold_assignment(int64_t n, int folds, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int> fold(static_cast<size_t>(n));
  for (size_t i = 0; i < order.size(); ++i) fold[static_cast<size_t>(order[i])] = static_cast<int>(i % folds);
  return fold;
}

LinearProbe fit_linear_probe(const torch::Tensor& features, const torch::Tensor& labels, int64_t num_classes,
                             const ProbeConfig& cfg) {
  check_inputs(features, labels, num_classes);
  if (cfg.l2_grid.empty() || cfg.folds < 2 || cfg.max_iter < 1) throw std::invalid_argument("invalid probe configuration");
  auto x = features.to(torch::kDouble);
  auto y = labels.to(torch::kLong);
  const int64_t n = x.size(0);
  LinearProbe out;
  out.l2 = cfg.l2_grid.front();
  out.cv_accuracy = -1;
  // cross-validation (on a seeded subset when the data is large) picks the penalty
  std::vector<int64_t> cv_rows(static_cast<size_t>(n));
  std::iota(cv_rows.begin(), cv_rows.end(), 0);
  if (cfg.max_cv_samples > 0 && n > cfg.max_cv_samples) {
    std::mt19937_64 rng(cfg.seed ^ 0x9e3779b97f4a7c15ULL);
    std::shuffle(cv_rows.begin(), cv_rows.end(), rng);
    cv_rows.resize(static_cast<size_t>(cfg.max_cv_samples));
  }
  const int folds = static_cast<int>(std::min<int64_t>(cfg.folds, static_cast<int64_t>(cv_rows.size())));
  auto fold = fold_assignment(static_cast<int64_t>(cv_rows.size()), folds, cfg.seed);
  for (double l2 : cfg.l2_grid) {
    double correct = 0;
    for (int f = 0; f < folds; ++f) {
      std::vector<int64_t> tr, te;
      for (size_t i = 0; i < cv_rows.size(); ++i) (fold[i] == f ? te : tr).push_back(cv_rows[i]);
      if (tr.empty() || te.empty()) continue;
      auto s = standardize(select(x, tr));
      auto [w, b] = fit_softmax(s.x, select(y, tr), num_classes, l2, cfg.max_iter);
      auto xt = (select(x, te) - s.mean) / s.scale;
      correct += accuracy(torch::addmm(b, xt, w), select(y, te)) * static_cast<double>(te.size());
    }
    const double acc = correct / static_cast<double>(cv_rows.size());
    // ties go to the stronger penalty (the grid ascends)
    if (acc >= out.cv_accuracy) {
      out.cv_accuracy = acc;
      out.l2 = l2;
    }
  }
  auto s = standardize(x);
  auto [w, b] = fit_softmax(s.x, y, num_classes, out.l2, cfg.max_iter);
  auto logits = torch::addmm(b, s.x, w);
  out.train_accuracy = accuracy(logits, y);
  out.train_loss = torch::nn::functional::cross_entropy(logits, y).item<double>();
  // logits = ((x - mean) / scale) W + b = x (W / scale) + (b - (mean / scale) W)
  auto w_raw = w / s.scale.unsqueeze(1);
  out.weight = w_raw.t().contiguous().to(torch::kFloat);
  out.bias = (b - (s.mean / s.scale).matmul(w)).to(torch::kFloat);
  return out;
}

void apply_linear_probe(ClassifierImpl& model, const LinearProbe& probe) {
  auto head = model.linear_head();
  if (!head) throw std::invalid_argument("the linear probe needs a linear head (create the model with head: 'linear')");
  if (head->weight.sizes() != probe.weight.sizes())
    throw std::invalid_argument("the probe's weight " + std::string(c10::str(probe.weight.sizes())) + " does not fit the head's " + std::string(c10::str(head->weight.sizes())));
  torch::NoGradGuard guard;
  head->weight.copy_(probe.weight);
  head->bias.copy_(probe.bias);
}

PrototypeFit fit_prototypes(const torch::Tensor& features, const torch::Tensor& labels, int64_t num_classes,
                            const torch::Tensor& base, double scale) {
  if (features.dim() != 2 || labels.dim() != 1 || features.size(0) != labels.size(0) || features.size(0) < 1)
    throw std::invalid_argument("features must be [N, D] and labels [N], N >= 1");
  if (num_classes < 2) throw std::invalid_argument("a prototype head needs at least 2 classes");
  auto x = features.to(torch::kDouble);
  auto y = labels.to(torch::kLong).to(x.device());
  if (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= num_classes)
    throw std::invalid_argument("labels must lie in [0, " + std::to_string(num_classes - 1) + "]");
  const int64_t d = x.size(1);
  if (base.defined() && (base.dim() != 2 || base.size(0) != num_classes || base.size(1) != d))
    throw std::invalid_argument("the kept head rows must be [" + std::to_string(num_classes) + ", " + std::to_string(d) + "]");
  namespace F = torch::nn::functional;
  auto z = F::normalize(x, F::NormalizeFuncOptions().dim(1));
  auto counts = torch::bincount(y.cpu(), {}, num_classes);
  auto sums = torch::zeros({num_classes, d}, x.options()).index_add_(0, y, z);
  auto proto = F::normalize(sums, F::NormalizeFuncOptions().dim(1));
  PrototypeFit out;
  std::vector<int64_t> kept;
  for (int64_t c = 0; c < num_classes; ++c) (counts[c].item<int64_t>() > 0 ? out.fitted : kept).push_back(c);
  double row_norm = 0;
  if (!kept.empty()) {
    if (!base.defined()) throw std::invalid_argument("class " + std::to_string(kept.front()) + " has no examples");
    auto b = base.to(x.options());
    auto k = torch::tensor(kept, torch::kLong).to(x.device());
    auto kept_rows = b.index_select(0, k);
    row_norm = kept_rows.norm(2, 1).mean().item<double>();
    if (!(row_norm > 0)) throw std::invalid_argument("the kept head rows are zero: not a prototype head");
    proto.index_copy_(0, k, F::normalize(kept_rows, F::NormalizeFuncOptions().dim(1)));
  }
  // leave-one-out: a sample of a class with n >= 2 examples against its class's prototype without it
  auto cos = z.matmul(proto.t());  // [N, C]
  auto own = sums.index_select(0, y);
  auto zs = (z * own).sum(1);  // z_i · S_c
  auto n_own = counts.to(x.device()).index_select(0, y);
  auto loo_mask = n_own.ge(2);
  out.loo_samples = loo_mask.sum().item<int64_t>();
  torch::Tensor loo_cos;
  if (out.loo_samples > 0) {
    auto rest_norm = (own.pow(2).sum(1) - 2 * zs + 1).clamp_min(1e-12).sqrt();
    auto own_cos = (zs - 1) / rest_norm;
    loo_cos = cos.clone();
    loo_cos.scatter_(1, y.unsqueeze(1), own_cos.unsqueeze(1));
    loo_cos = loo_cos.index_select(0, loo_mask.nonzero().squeeze(1));
    auto loo_y = y.index_select(0, loo_mask.nonzero().squeeze(1));
    out.loo_accuracy = accuracy(loo_cos, loo_y);
    if (scale <= 0 && kept.empty()) {
      double best = std::numeric_limits<double>::infinity();
      for (int i = 0; i <= 40; ++i) {
        const double s = std::pow(10.0, 2.5 * i / 40.0);  // 1 … 316
        const double ce = F::cross_entropy(loo_cos * s, loo_y).item<double>();
        if (ce < best) {
          best = ce;
          scale = s;
        }
      }
    }
  }
  const double mean_norm = x.norm(2, 1).mean().item<double>();
  if (!(mean_norm > 0)) throw std::invalid_argument("the examples' embeddings are all zero");
  // a given scale re-scales the kept rows too; otherwise they keep theirs and the new rows take it
  if (!kept.empty() && scale <= 0) scale = row_norm * mean_norm;
  if (scale <= 0) scale = 10.0;
  row_norm = scale / mean_norm;
  out.scale = scale;
  out.weight = (proto * row_norm).to(torch::kFloat).contiguous();
  return out;
}

double knn_accuracy(const torch::Tensor& features, const torch::Tensor& labels, int64_t num_classes, int k, int folds,
                    uint64_t seed) {
  check_inputs(features, labels, num_classes);
  auto x = torch::nn::functional::normalize(features.to(torch::kFloat), torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto y = labels.to(torch::kLong);
  const int64_t n = x.size(0);
  folds = static_cast<int>(std::min<int64_t>(std::max(folds, 2), n));
  auto fold = fold_assignment(n, folds, seed);
  double correct = 0;
  for (int f = 0; f < folds; ++f) {
    std::vector<int64_t> tr, te;
    for (int64_t i = 0; i < n; ++i) (fold[static_cast<size_t>(i)] == f ? te : tr).push_back(i);
    if (tr.empty() || te.empty()) continue;
    auto xtr = select(x, tr), ytr = select(y, tr);
    const int64_t kk = std::min<int64_t>(k, static_cast<int64_t>(tr.size()));
    for (size_t start = 0; start < te.size(); start += 1024) {
      std::vector<int64_t> rows(te.begin() + static_cast<long>(start),
                                te.begin() + static_cast<long>(std::min(te.size(), start + 1024)));
      auto sims = select(x, rows).mm(xtr.t());
      auto top = sims.topk(kk, 1);
      auto votes = torch::zeros({static_cast<int64_t>(rows.size()), num_classes}, x.options());
      votes.scatter_add_(1, ytr.index({std::get<1>(top)}), (std::get<0>(top) / 0.07).exp());
      correct += votes.argmax(1).eq(select(y, rows)).sum().item<double>();
    }
  }
  return correct / static_cast<double>(n);
}

double logme(const torch::Tensor& features, const torch::Tensor& labels, int64_t num_classes) {
  check_inputs(features, labels, num_classes);
  auto f = features.to(torch::kDouble);
  auto y = labels.to(torch::kLong);
  const double n = static_cast<double>(f.size(0));
  const double d = static_cast<double>(f.size(1));
  auto svd = at::linalg_svd(f, /*full_matrices=*/false);
  auto u = std::get<0>(svd);
  auto sigma = std::get<1>(svd).pow(2);  // eigenvalues of FᵀF (the others are 0)
  const double r = static_cast<double>(sigma.size(0));
  double total = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    auto t = y.eq(c).to(torch::kDouble);
    auto proj = u.t().matmul(t);  // t in the left singular basis
    const double t2 = t.dot(t).item<double>();
    const double perp = std::max(0.0, t2 - proj.dot(proj).item<double>());
    auto p2 = proj.pow(2);
    double alpha = 1.0, beta = 1.0, m2 = 0, res = 0;
    for (int it = 0; it < 100; ++it) {
      auto denom = alpha + beta * sigma;
      const double gamma = (beta * sigma / denom).sum().item<double>();
      m2 = (beta * beta * sigma * p2 / denom.pow(2)).sum().item<double>();
      res = (alpha * alpha * p2 / denom.pow(2)).sum().item<double>() + perp;
      const double na = gamma / std::max(m2, 1e-300);
      const double nb = (n - gamma) / std::max(res, 1e-300);
      const bool done = std::abs(na - alpha) / alpha < 1e-5 && std::abs(nb - beta) / beta < 1e-5;
      alpha = na;
      beta = nb;
      if (done) break;
    }
    auto denom = alpha + beta * sigma;
    m2 = (beta * beta * sigma * p2 / denom.pow(2)).sum().item<double>();
    res = (alpha * alpha * p2 / denom.pow(2)).sum().item<double>() + perp;
    const double evidence = n / 2 * std::log(beta) + d / 2 * std::log(alpha) - n / 2 * std::log(2 * M_PI) -
                            beta / 2 * res - alpha / 2 * m2 - 0.5 * denom.log().sum().item<double>() -
                            0.5 * (d - r) * std::log(alpha);
    total += evidence / n;
  }
  return total / static_cast<double>(num_classes);
}

}  // namespace tl
