#include "data/batch_augment.h"

#include <algorithm>
#include <cmath>

namespace tl {
namespace {

bool is_u8(const torch::Tensor& t) { return t.scalar_type() == torch::kUInt8; }

double sample_beta(SampleRng& rng, double alpha) {
  std::mt19937_64 g(rng.next());
  std::gamma_distribution<double> ga(alpha, 1.0);
  double x = ga(g), y = ga(g);
  return x + y > 0 ? x / (x + y) : 0.5;
}

// Per-sample coefficients as a [B, 1, 1, 1] float tensor on `like`'s device. `a` and `1 - a` are both rounded from
// double, as the per-sample blend's scalar arithmetic does, so the batched blend gives the same floats.
torch::Tensor coef(const std::vector<double>& v, const torch::Tensor& like) {
  return torch::tensor(v, torch::kFloat64).to(torch::kFloat32).view({-1, 1, 1, 1}).to(like.device());
}
torch::Tensor mask_of(const std::vector<bool>& v, const torch::Tensor& like) {
  std::vector<int64_t> m(v.begin(), v.end());
  return torch::tensor(m, torch::kInt64).to(torch::kBool).view({-1, 1, 1, 1}).to(like.device());
}

// torchvision's _blend with one ratio per sample: (r * a + (1 - r) * b).clamp(0, bound), cast back (truncating).
torch::Tensor blend_batch(const torch::Tensor& a, const torch::Tensor& b, const std::vector<double>& ratio) {
  std::vector<double> rest(ratio.size());
  for (size_t i = 0; i < ratio.size(); ++i) rest[i] = 1.0 - ratio[i];
  const double bound = is_u8(a) ? 255.0 : 1.0;
  auto out = (coef(ratio, a) * a.to(torch::kFloat32) + coef(rest, a) * b.to(torch::kFloat32)).clamp(0, bound);
  return out.to(a.scalar_type());
}

// rgb_to_grayscale on [B, 3, H, W]: one channel, in the input's dtype (uint8 truncates, as torchvision).
torch::Tensor gray_batch(const torch::Tensor& img) {
  auto f = img.to(torch::kFloat32);
  return (0.2989 * f.select(1, 0) + 0.587 * f.select(1, 1) + 0.114 * f.select(1, 2)).to(img.scalar_type()).unsqueeze(1);
}

torch::Tensor where_b(const std::vector<bool>& sel, const torch::Tensor& yes, const torch::Tensor& no) {
  return torch::where(mask_of(sel, no), yes, no);
}

// noinline: inlined into apply_deferred, GCC 12 reports a false -Wfree-nonheap-object on the vectors here
[[gnu::noinline]] torch::Tensor jitter_batch(torch::Tensor x, const std::vector<TailDraw>& d) {
  const size_t n = d.size();
  for (int pos = 0; pos < 4; ++pos) {
    for (int fn = 0; fn < 4; ++fn) {
      std::vector<bool> sel(n);
      std::vector<double> f(n, 1.0);
      bool any = false;
      for (size_t b = 0; b < n; ++b) {
        sel[b] = d[b].order[pos] == fn && !std::isnan(d[b].factor[fn]);
        if (sel[b]) f[b] = d[b].factor[fn];
        any = any || sel[b];
      }
      if (!any) continue;
      torch::Tensor y;
      if (fn == 0) {
        y = blend_batch(x, torch::zeros_like(x), f);
      } else if (fn == 1) {
        auto mean = gray_batch(x).to(torch::kFloat32).mean({1, 2, 3}, true);
        y = blend_batch(x, mean.expand(x.sizes()), f);
      } else if (fn == 2) {
        y = blend_batch(x, gray_batch(x).expand(x.sizes()), f);
      } else {
        // hue: the per-sample op on each selected image (on the batch's device)
        y = x.clone();
        for (size_t b = 0; b < n; ++b)
          if (sel[b]) y[static_cast<int64_t>(b)].copy_(adjust_hue(x[static_cast<int64_t>(b)], f[b]));
      }
      x = where_b(sel, y, x);
    }
  }
  return x;
}

}  // namespace

bool is_tail_op(Op k) {
  return k == Op::RandomHorizontalFlip || k == Op::RandomVerticalFlip || k == Op::ColorJitter || k == Op::RandomGrayscale ||
         k == Op::RandomErasing || k == Op::ToTensor || k == Op::Normalize;
}

size_t tail_start(const TransformSpec& spec) {
  size_t k = spec.ops.size();
  while (k > 0 && is_tail_op(spec.ops[k - 1].kind)) --k;
  // every sample must reach the tail at one size: the op before it fixes the size
  if (k == 0) return spec.ops.size();
  const auto& before = spec.ops[k - 1];
  const bool fixed = before.kind == Op::CenterCrop || before.kind == Op::RandomCrop || before.kind == Op::RandomResizedCrop ||
                     (before.kind == Op::Resize && before.size.size() == 2);
  return fixed ? k : spec.ops.size();
}

TailDraw draw_tail(const TransformOp& op, SampleRng& rng, int64_t ih, int64_t iw) {
  TailDraw d;
  const Op k = op.kind;
  if (k == Op::RandomHorizontalFlip || k == Op::RandomVerticalFlip || k == Op::RandomGrayscale) {
    d.flag = rng.bernoulli(op.p);
  } else if (k == Op::ColorJitter) {
    auto order = rng.permutation(4);
    for (int i = 0; i < 4; ++i) d.order[i] = order[i];
    auto draw = [&](const std::vector<double>& r) { return r.size() == 2 ? rng.uniform(r[0], r[1]) : NAN; };
    d.factor[0] = draw(op.brightness);
    d.factor[1] = draw(op.contrast);
    d.factor[2] = draw(op.saturation);
    d.factor[3] = draw(op.hue);
  } else if (k == Op::RandomErasing) {
    if (!rng.bernoulli(op.p)) return d;
    const double area = static_cast<double>(ih) * iw;
    const double lr0 = std::log(op.ratio[0]), lr1 = std::log(op.ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      double erase = area * rng.uniform(op.scale[0], op.scale[1]);
      double aspect = std::exp(rng.uniform(lr0, lr1));
      int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(erase * aspect)));
      int64_t w = static_cast<int64_t>(std::nearbyint(std::sqrt(erase / aspect)));
      if (!(h < ih && w < iw)) continue;
      d.top = rng.randint(0, ih - h + 1);
      d.left = rng.randint(0, iw - w + 1);
      d.height = h;
      d.width = w;
      d.flag = true;
      break;
    }
  }
  return d;
}

torch::Tensor apply_tail_one(torch::Tensor img, const TransformOp& op, const TailDraw& d) {
  const Op k = op.kind;
  if (k == Op::RandomHorizontalFlip) return d.flag ? img.flip({-1}) : img;
  if (k == Op::RandomVerticalFlip) return d.flag ? img.flip({-2}) : img;
  if (k == Op::RandomGrayscale) return d.flag ? rgb_to_grayscale(img, 3) : img;
  if (k == Op::RandomErasing) {
    if (!d.flag) return img;
    img = img.clone();
    img.narrow(1, d.top, d.height).narrow(2, d.left, d.width).fill_(op.erase_value);
    return img;
  }
  if (k == Op::ColorJitter) {
    for (int fn : d.order) {
      const double f = d.factor[fn];
      if (std::isnan(f)) continue;
      if (fn == 0) img = blend_images(img, torch::zeros_like(img), f);
      if (fn == 1) {
        auto mean = rgb_to_grayscale(img, 1).to(torch::kFloat32).mean();
        img = blend_images(img, mean.expand(img.sizes()), f);
      }
      if (fn == 2) img = blend_images(img, rgb_to_grayscale(img, 1).expand(img.sizes()), f);
      if (fn == 3) img = adjust_hue(img, f);
    }
    return img;
  }
  throw std::invalid_argument(std::string("apply_tail_one: '") + op_name(k) + "' is not a drawn tail op");
}

MixPlan draw_mix(const MixConfig& cfg, SampleRng& rng, bool cutmix, int64_t H, int64_t W) {
  MixPlan plan;
  if (!rng.bernoulli(cutmix ? cfg.cutmix_p : cfg.mixup_p)) return plan;
  plan.apply = true;
  plan.cutmix = cutmix;
  if (!cutmix) {
    plan.lam = sample_beta(rng, cfg.mixup_alpha);
    return plan;
  }
  double lam = sample_beta(rng, cfg.cutmix_alpha);
  int64_t rx = rng.randint(0, W), ry = rng.randint(0, H);
  double r = 0.5 * std::sqrt(1.0 - lam);
  int64_t rw = static_cast<int64_t>(r * W), rh = static_cast<int64_t>(r * H);
  plan.x1 = std::max<int64_t>(rx - rw, 0);
  plan.y1 = std::max<int64_t>(ry - rh, 0);
  plan.x2 = std::min<int64_t>(rx + rw, W);
  plan.y2 = std::min<int64_t>(ry + rh, H);
  plan.lam = 1.0 - static_cast<double>((plan.x2 - plan.x1) * (plan.y2 - plan.y1)) / static_cast<double>(W * H);
  return plan;
}

torch::Tensor mix_labels(const torch::Tensor& labels, int64_t num_classes, const MixPlan& plan) {
  auto onehot = torch::one_hot(labels, num_classes).to(torch::kFloat32);
  if (!plan.apply) return onehot;
  auto rolled = onehot.roll(1, 0);
  return onehot.mul_(plan.lam).add_(rolled, 1.0 - plan.lam);
}

void apply_mix(torch::Tensor& images, const MixPlan& plan) {
  if (!plan.apply) return;
  auto rolled = images.roll(1, 0);
  if (!plan.cutmix) {
    images.mul_(plan.lam).add_(rolled, 1.0 - plan.lam);
    return;
  }
  const int64_t h = plan.y2 - plan.y1, w = plan.x2 - plan.x1;
  images.narrow(2, plan.y1, h).narrow(3, plan.x1, w).copy_(rolled.narrow(2, plan.y1, h).narrow(3, plan.x1, w));
}

torch::Tensor apply_deferred(const torch::Tensor& images, const DeferredAugment& aug) {
  torch::NoGradGuard ng;
  torch::Tensor x = images;
  const int64_t H = x.size(2), W = x.size(3);
  for (size_t oi = 0; oi < aug.ops.size(); ++oi) {
    const auto& op = aug.ops[oi];
    const auto& d = aug.draws[oi];
    const Op k = op.kind;
    std::vector<bool> flags(d.size());
    for (size_t b = 0; b < d.size(); ++b) flags[b] = d[b].flag;
    if (k == Op::RandomHorizontalFlip) {
      x = where_b(flags, x.flip({-1}), x);
    } else if (k == Op::RandomVerticalFlip) {
      x = where_b(flags, x.flip({-2}), x);
    } else if (k == Op::RandomGrayscale) {
      x = where_b(flags, gray_batch(x).expand(x.sizes()), x);
    } else if (k == Op::ColorJitter) {
      x = jitter_batch(x, d);
    } else if (k == Op::RandomErasing) {
      std::vector<int64_t> box;  // top, bottom, left, right per sample (empty box when not erased)
      for (const auto& s : d) {
        box.insert(box.end(), {s.top, s.flag ? s.top + s.height : s.top, s.left, s.flag ? s.left + s.width : s.left});
      }
      auto bt = torch::tensor(box, torch::kInt64).view({-1, 4}).to(x.device());
      auto rows = torch::arange(H, bt.options()).view({1, 1, H, 1});
      auto cols = torch::arange(W, bt.options()).view({1, 1, 1, W});
      auto v = [&](int i) { return bt.select(1, i).view({-1, 1, 1, 1}); };
      auto m = (rows >= v(0)) & (rows < v(1)) & (cols >= v(2)) & (cols < v(3));
      x = x.masked_fill(m, op.erase_value);
    } else if (k == Op::ToTensor) {
      if (is_u8(x)) x = x.to(torch::kFloat32).div_(255.0);
    } else if (k == Op::Normalize) {
      if (is_u8(x)) throw std::invalid_argument("normalize needs a float image: put toTensor before it");
      auto mean = torch::tensor(op.mean, torch::kFloat32).view({1, -1, 1, 1}).to(x.device());
      auto stdv = torch::tensor(op.std, torch::kFloat32).view({1, -1, 1, 1}).to(x.device());
      x = x.sub(mean).div_(stdv);
    }
  }
  if (is_u8(x)) x = x.to(torch::kFloat32);  // a spec without toTensor: the per-sample batch holds floats too
  x = x.contiguous();
  apply_mix(x, aug.mix);
  return x;
}

}  // namespace tl
