#include "data/transforms.h"

#include "data/batch_augment.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace tl {

SampleRng::SampleRng(uint64_t seed, uint64_t epoch, uint64_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(epoch >> 32), static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32)};
  gen_.seed(seq);
}

double SampleRng::uniform(double lo, double hi) {
  double u = static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0);
  return lo + (hi - lo) * u;
}

int64_t SampleRng::randint(int64_t lo, int64_t hi_excl) {
  if (hi_excl <= lo) return lo;
  uint64_t span = static_cast<uint64_t>(hi_excl - lo);
  return lo + static_cast<int64_t>(gen_() % span);
}

std::vector<int> SampleRng::permutation(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  for (int i = n - 1; i > 0; --i) std::swap(v[i], v[randint(0, i + 1)]);
  return v;
}

namespace {

bool is_uint8(const torch::Tensor& t) { return t.scalar_type() == torch::kUInt8; }

// torchvision's _cast_squeeze_out: round back to uint8.
torch::Tensor back_to(const torch::Tensor& f, bool was_uint8) {
  return was_uint8 ? f.round().clamp(0, 255).to(torch::kUInt8) : f;
}

}  // namespace

torch::Tensor blend_images(const torch::Tensor& a, const torch::Tensor& b, double ratio) {
  double bound = is_uint8(a) ? 255.0 : 1.0;
  auto out = (ratio * a.to(torch::kFloat32) + (1.0 - ratio) * b.to(torch::kFloat32)).clamp(0, bound);
  return out.to(a.scalar_type());
}

torch::Tensor rgb_to_grayscale(const torch::Tensor& img, int channels) {
  auto f = img.to(torch::kFloat32);
  auto l = (0.2989 * f[0] + 0.587 * f[1] + 0.114 * f[2]).to(img.scalar_type()).unsqueeze(0);
  return channels == 3 ? l.expand({3, l.size(1), l.size(2)}).contiguous() : l;
}

namespace {

// torchvision _rgb2hsv / _hsv2rgb on float images in [0, 1].
torch::Tensor rgb2hsv(const torch::Tensor& img) {
  auto r = img[0], g = img[1], b = img[2];
  auto maxc = std::get<0>(img.max(0));
  auto minc = std::get<0>(img.min(0));
  auto eqc = maxc == minc;
  auto cr = maxc - minc;
  auto ones = torch::ones_like(maxc);
  auto s = cr / torch::where(eqc, ones, maxc);
  auto cr_divisor = torch::where(eqc, ones, cr);
  auto rc = (maxc - r) / cr_divisor, gc = (maxc - g) / cr_divisor, bc = (maxc - b) / cr_divisor;
  auto hr = (maxc == r) * (bc - gc);
  auto hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc);
  auto hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc);
  auto h = hr + hg + hb;
  h = torch::fmod(h / 6.0 + 1.0, 1.0);
  return torch::stack({h, s, maxc});
}

torch::Tensor hsv2rgb(const torch::Tensor& img) {
  auto h = img[0], s = img[1], v = img[2];
  auto i = torch::floor(h * 6.0);
  auto f = h * 6.0 - i;
  i = i.to(torch::kInt32);
  auto p = torch::clamp(v * (1.0 - s), 0.0, 1.0);
  auto q = torch::clamp(v * (1.0 - s * f), 0.0, 1.0);
  auto t = torch::clamp(v * (1.0 - s * (1.0 - f)), 0.0, 1.0);
  i = torch::remainder(i, 6);
  auto mask = i.unsqueeze(0) == torch::arange(6, torch::kInt32).view({-1, 1, 1});
  auto a1 = torch::stack({v, q, p, p, t, v});
  auto a2 = torch::stack({t, v, v, q, p, p});
  auto a3 = torch::stack({p, p, t, v, v, q});
  auto a4 = torch::stack({a1, a2, a3});  // [3, 6, H, W]
  return torch::einsum("ijk, xijk -> xjk", {mask.to(img.scalar_type()), a4});
}

}  // namespace

torch::Tensor adjust_hue(const torch::Tensor& img, double factor) {
  bool u8 = is_uint8(img);
  auto f = u8 ? img.to(torch::kFloat32) / 255.0 : img;
  auto hsv = rgb2hsv(f);
  auto h = torch::fmod(hsv[0] + factor, 1.0);
  auto out = hsv2rgb(torch::stack({h, hsv[1], hsv[2]}));
  return u8 ? (out * 255.0).to(torch::kUInt8) : out;
}

namespace {

Interp parse_interp(const std::string& s, const std::string& where) {
  if (s == "bilinear") return Interp::Bilinear;
  if (s == "bicubic") return Interp::Bicubic;
  if (s == "nearest") return Interp::Nearest;
  throw std::invalid_argument(where + ".interpolation must be bilinear, bicubic or nearest");
}

torch::Tensor pad_const(const torch::Tensor& img, int64_t l, int64_t t, int64_t r, int64_t b, double fill) {
  if (l == 0 && t == 0 && r == 0 && b == 0) return img;
  auto out = torch::full({img.size(0), img.size(1) + t + b, img.size(2) + l + r}, fill, img.options());
  out.narrow(1, t, img.size(1)).narrow(2, l, img.size(2)).copy_(img);
  return out;
}

// Round half to even (torch.round, nearbyint) for |v| < 2^22 without a libm call: adding 1.5 * 2^23 leaves no fraction bits,
// so the FPU's default round-to-nearest-even does the rounding.
inline float round_half_even(float v) {
  constexpr float kBig = 12582912.0f;
  float r = v + kBig;
  return r - kBig;
}

// ---- uint8 antialiased resize ---------------------------------------------------------------------------------
// Separable resampling of planar uint8 images with the weights of ATen's _upsample_{bilinear,bicubic}2d_aa (the
// PIL-derived filters torchvision's tensor resize uses, support scaled by the downsampling factor, weights
// normalised per output pixel). Pass 1 resamples rows (height) into a float buffer, pass 2 columns, rounding half to
// even and clamping as torchvision's uint8 path does. It skips the uint8 -> float -> uint8 tensor round trip and
// the generic TensorIterator kernel; the vertical pass vectorises across a row.
struct AxisWeights {
  std::vector<int64_t> start;  // first input index per output index
  std::vector<int64_t> size;   // taps per output index
  std::vector<float> w;        // taps x out, row-major per output index
  int64_t taps = 0;
};

AxisWeights aa_axis_weights(int64_t in, int64_t out, Interp interp) {
  const double interp_size = interp == Interp::Bicubic ? 4.0 : 2.0;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? static_cast<float>(interp_size * 0.5) * scale : static_cast<float>(interp_size * 0.5);
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  auto filter = [interp](float x) -> float {
    x = std::fabs(x);
    if (interp == Interp::Bicubic) {
      const float a = -0.5f;
      if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
      if (x < 2.0f) return (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
      return 0.0f;
    }
    return x < 1.0f ? 1.0f - x : 0.0f;
  };
  AxisWeights aw;
  aw.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  aw.start.resize(out);
  aw.size.resize(out);
  aw.w.assign(static_cast<size_t>(out * aw.taps), 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const float center = scale * (static_cast<float>(i) + 0.5f);
    int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5f), 0);
    int64_t xsize = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5f), in) - xmin;
    xsize = std::min(xsize, aw.taps);
    float* w = aw.w.data() + i * aw.taps;
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      w[j] = filter((static_cast<float>(j + xmin) - center + 0.5f) * invscale);
      total += w[j];
    }
    if (total != 0.0f)
      for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
    aw.start[i] = xmin;
    aw.size[i] = std::max<int64_t>(xsize, 0);
  }
  return aw;
}

torch::Tensor resize_aa_uint8(const torch::Tensor& img, int64_t oh, int64_t ow, Interp interp) {
  auto src = img.contiguous();
  const int64_t c = src.size(0), h = src.size(1), w = src.size(2);
  const AxisWeights wy = aa_axis_weights(h, oh, interp), wx = aa_axis_weights(w, ow, interp);
  auto out = torch::empty({c, oh, ow}, torch::kUInt8);
  std::vector<float> rows(static_cast<size_t>(oh * w));  // pass 1 result for one channel: [oh, w]
  for (int64_t ch = 0; ch < c; ++ch) {
    const uint8_t* in = src.data_ptr<uint8_t>() + ch * h * w;
    uint8_t* o = out.data_ptr<uint8_t>() + ch * oh * ow;
    // pass 1: vertical (rows), vectorised across the row
    for (int64_t y = 0; y < oh; ++y) {
      float* r = rows.data() + y * w;
      std::fill(r, r + w, 0.0f);
      const float* wt = wy.w.data() + y * wy.taps;
      for (int64_t j = 0; j < wy.size[y]; ++j) {
        const float k = wt[j];
        const uint8_t* line = in + (wy.start[y] + j) * w;
        for (int64_t x = 0; x < w; ++x) r[x] += k * static_cast<float>(line[x]);
      }
    }
    // pass 2: horizontal (columns), rounding half to even and clamping like torchvision's uint8 cast
    for (int64_t y = 0; y < oh; ++y) {
      const float* r = rows.data() + y * w;
      uint8_t* line = o + y * ow;
      for (int64_t x = 0; x < ow; ++x) {
        const float* wt = wx.w.data() + x * wx.taps;
        const float* p = r + wx.start[x];
        float v = 0.0f;
        for (int64_t j = 0; j < wx.size[x]; ++j) v += wt[j] * p[j];
        v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
        line[x] = static_cast<uint8_t>(round_half_even(v));
      }
    }
  }
  return out;
}

}  // namespace

torch::Tensor resize(const torch::Tensor& img, std::vector<int64_t> size, Interp interp, bool antialias) {
  const int64_t h = img.size(-2), w = img.size(-1);
  int64_t oh, ow;
  if (size.size() == 1) {
    // torchvision: the shorter side becomes size; the longer keeps the aspect ratio (truncated).
    if (w <= h) {
      ow = size[0];
      oh = static_cast<int64_t>(static_cast<double>(size[0]) * h / w);
    } else {
      oh = size[0];
      ow = static_cast<int64_t>(static_cast<double>(size[0]) * w / h);
    }
  } else {
    oh = size[0];
    ow = size[1];
  }
  if (oh == h && ow == w) return img;
  bool u8 = is_uint8(img);
  if (u8 && antialias && img.dim() == 3 && (interp == Interp::Bilinear || interp == Interp::Bicubic))
    return resize_aa_uint8(img, oh, ow, interp);
  auto x = img.to(torch::kFloat32).unsqueeze(0);
  torch::Tensor y;
  switch (interp) {
    case Interp::Bilinear:
      y = antialias ? at::_upsample_bilinear2d_aa(x, {oh, ow}, false) : at::upsample_bilinear2d(x, {oh, ow}, false);
      break;
    case Interp::Bicubic:
      y = antialias ? at::_upsample_bicubic2d_aa(x, {oh, ow}, false) : at::upsample_bicubic2d(x, {oh, ow}, false);
      if (u8) y = y.clamp(0, 255);
      break;
    case Interp::Nearest:
      y = at::upsample_nearest2d(x, {oh, ow});
      break;
  }
  return back_to(y.squeeze(0), u8);
}

torch::Tensor crop(const torch::Tensor& img, int64_t top, int64_t left, int64_t h, int64_t w) {
  const int64_t ih = img.size(-2), iw = img.size(-1);
  if (top >= 0 && left >= 0 && top + h <= ih && left + w <= iw) return img.narrow(-2, top, h).narrow(-1, left, w);
  // torchvision pads with zeros where the box leaves the image
  auto out = torch::zeros({img.size(0), h, w}, img.options());
  int64_t y0 = std::max<int64_t>(top, 0), x0 = std::max<int64_t>(left, 0);
  int64_t y1 = std::min(top + h, ih), x1 = std::min(left + w, iw);
  if (y1 > y0 && x1 > x0)
    out.narrow(1, y0 - top, y1 - y0).narrow(2, x0 - left, x1 - x0).copy_(img.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0));
  return out;
}

torch::Tensor center_crop(const torch::Tensor& img, int64_t ch, int64_t cw) {
  auto x = img;
  int64_t ih = x.size(-2), iw = x.size(-1);
  if (ch > ih || cw > iw) {
    int64_t l = cw > iw ? (cw - iw) / 2 : 0, t = ch > ih ? (ch - ih) / 2 : 0;
    int64_t r = cw > iw ? (cw - iw + 1) / 2 : 0, b = ch > ih ? (ch - ih + 1) / 2 : 0;
    x = pad_const(x, l, t, r, b, 0);
    ih = x.size(-2);
    iw = x.size(-1);
    if (ch == ih && cw == iw) return x;
  }
  // Python's round(): half to even, as std::nearbyint in the default rounding mode.
  int64_t top = static_cast<int64_t>(std::nearbyint((ih - ch) / 2.0));
  int64_t left = static_cast<int64_t>(std::nearbyint((iw - cw) / 2.0));
  return crop(x, top, left, ch, cw);
}

namespace {

// torchvision's affine grid for a rotation about the image center (float32, as F.rotate on tensors), for the
// output window [top, top+oh) x [left, left+ow) of an h x w output.
torch::Tensor rotation_grid(int64_t h, int64_t w, double angle, int64_t top, int64_t left, int64_t oh, int64_t ow) {
  const double rot = -angle * M_PI / 180.0;
  const double a = std::cos(rot), b = -std::sin(rot), c = std::sin(rot), d = std::cos(rot);
  const float m[6] = {static_cast<float>(d), static_cast<float>(-b), 0.f, static_cast<float>(-c), static_cast<float>(a), 0.f};
  auto theta = torch::from_blob(const_cast<float*>(m), {1, 2, 3}, torch::kFloat32).clone();
  auto base = torch::empty({1, h, w, 3}, torch::kFloat32);
  base.select(3, 0).copy_(torch::linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1, w, torch::kFloat32));
  base.select(3, 1).copy_(torch::linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1, h, torch::kFloat32).unsqueeze(-1));
  base.select(3, 2).fill_(1);
  auto window = base.narrow(1, top, oh).narrow(2, left, ow).contiguous();
  auto scale = torch::tensor({0.5f * w, 0.5f * h}, torch::kFloat32);
  return window.view({1, oh * ow, 3}).bmm(theta.transpose(1, 2) / scale).view({oh, ow, 2}).contiguous();
}

// torch.linspace(start, end, steps) in float, element i (ATen computes the second half from the end).
inline float linspace_at(float start, float end, int64_t steps, int64_t i) {
  if (steps == 1) return start;
  const float step = (end - start) / static_cast<float>(steps - 1);
  return i < steps / 2 ? start + step * static_cast<float>(i) : end - step * static_cast<float>(steps - i - 1);
}

// Nearest-neighbour rotation of a uint8 image restricted to an output window, computing each source coordinate
// the way rotation_grid + grid_sample(nearest, zeros, align_corners=False) do (base grid from linspace, affine map,
// unnormalisation)
// without materialising either grid.
torch::Tensor rotate_nearest_u8(const torch::Tensor& img, double angle, double fill, int64_t top, int64_t left, int64_t oh,
                                int64_t ow) {
  const int64_t C = img.size(0), H = img.size(1), W = img.size(2);
  const double rot = -angle * M_PI / 180.0;
  const double a = std::cos(rot), b = -std::sin(rot), c = std::sin(rot), d = std::cos(rot);
  const float t00 = static_cast<float>(d), t01 = static_cast<float>(-b), t10 = static_cast<float>(-c), t11 = static_cast<float>(a);
  const float sx = 0.5f * static_cast<float>(W), sy = 0.5f * static_cast<float>(H);
  // grid = base @ (theta^T / scale): column k of the product uses theta[k][:] / scale[k]
  const float m00 = t00 / sx, m01 = t01 / sx, m10 = t10 / sy, m11 = t11 / sy;  // (translation terms are 0)
  auto src = img.contiguous();
  auto out = torch::empty({C, oh, ow}, torch::kUInt8);
  const uint8_t* s = src.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  const uint8_t f = static_cast<uint8_t>(std::nearbyint(std::min(255.0, std::max(0.0, fill))));
  const float fw = static_cast<float>(W), fh = static_cast<float>(H);
  std::vector<float> bxs(static_cast<size_t>(ow));
  for (int64_t x = 0; x < ow; ++x) bxs[x] = linspace_at(-fw * 0.5f + 0.5f, fw * 0.5f + 0.5f - 1.f, W, left + x);
  const int64_t plane = oh * ow, in_plane = H * W;
  for (int64_t y = 0; y < oh; ++y) {
    const float by = linspace_at(-fh * 0.5f + 0.5f, fh * 0.5f + 0.5f - 1.f, H, top + y);
    for (int64_t x = 0; x < ow; ++x) {
      const float bx = bxs[x];
      const float gx = bx * m00 + by * m01, gy = bx * m10 + by * m11;
      const float fx = ((gx + 1.f) * fw - 1.f) / 2.f, fy = ((gy + 1.f) * fh - 1.f) / 2.f;
      const int64_t ix = static_cast<int64_t>(round_half_even(fx)), iy = static_cast<int64_t>(round_half_even(fy));
      const int64_t at = y * ow + x;
      if (ix >= 0 && ix < W && iy >= 0 && iy < H) {
        const int64_t from = iy * W + ix;
        for (int64_t ch = 0; ch < C; ++ch) o[ch * plane + at] = s[ch * in_plane + from];
      } else {
        for (int64_t ch = 0; ch < C; ++ch) o[ch * plane + at] = f;
      }
    }
  }
  return out;
}

// Rotation of the window [top, top+oh) x [left, left+ow) of the rotated h x w image.
torch::Tensor rotate_window(const torch::Tensor& img, double angle, Interp interp, double fill, int64_t top, int64_t left,
                            int64_t oh, int64_t ow) {
  const int64_t h = img.size(-2), w = img.size(-1);
  if (interp == Interp::Nearest && is_uint8(img)) return rotate_nearest_u8(img, angle, fill, top, left, oh, ow);
  auto grid = rotation_grid(h, w, angle, top, left, oh, ow);
  bool u8 = is_uint8(img);
  auto x = img.to(torch::kFloat32).unsqueeze(0);
  x = torch::cat({x, torch::ones({1, 1, h, w}, torch::kFloat32)}, 1);  // mask channel for the fill
  int64_t mode = interp == Interp::Nearest ? 1 : 0;  // grid_sampler: 0 bilinear, 1 nearest
  auto y = at::grid_sampler(x, grid.unsqueeze(0), mode, /*padding zeros*/ 0, /*align_corners*/ false);
  const int64_t C = img.size(0);
  auto mask = y.narrow(1, C, 1).expand({1, C, oh, ow});
  auto out = y.narrow(1, 0, C).clone();
  if (interp == Interp::Nearest) {
    out.masked_fill_(mask < 0.5, fill);
  } else {
    out = out * mask + (1.0 - mask) * fill;
  }
  return back_to(out.squeeze(0), u8);
}

// toTensor followed by normalize in one pass, with torchvision's float32 operation order.
torch::Tensor to_tensor_normalize(const torch::Tensor& img, const std::vector<double>& mean, const std::vector<double>& stdv,
                                  const torch::Tensor* into) {
  const int64_t C = img.size(0), n = img.size(1) * img.size(2);
  auto src = img.contiguous();
  const bool direct = into && into->scalar_type() == torch::kFloat32 && into->is_contiguous() && into->sizes() == img.sizes();
  auto out = direct ? *into : torch::empty({C, img.size(1), img.size(2)}, torch::kFloat32);
  const uint8_t* s = src.data_ptr<uint8_t>();
  float* o = out.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    const float m = static_cast<float>(mean[c]), sd = static_cast<float>(stdv[c]);
    for (int64_t i = 0; i < n; ++i) o[c * n + i] = (static_cast<float>(s[c * n + i]) / 255.f - m) / sd;
  }
  return out;
}

}  // namespace

torch::Tensor rotate(const torch::Tensor& img, double angle, Interp interp, double fill) {
  return rotate_window(img, angle, interp, fill, 0, 0, img.size(-2), img.size(-1));
}

const char* op_name(Op op) {
  switch (op) {
#define TL_OP_NAME(kind, name) \
  case Op::kind:               \
    return name;
    TL_TRANSFORM_OPS(TL_OP_NAME)
#undef TL_OP_NAME
  }
  return "?";
}

std::vector<std::string> op_names() {
  return {
#define TL_OP_STR(kind, name) name,
      TL_TRANSFORM_OPS(TL_OP_STR)
#undef TL_OP_STR
  };
}

namespace {
Op parse_op(const std::string& name, const std::string& where) {
#define TL_OP_PARSE(kind, str) \
  if (name == str) return Op::kind;
  TL_TRANSFORM_OPS(TL_OP_PARSE)
#undef TL_OP_PARSE
  throw std::invalid_argument(where + ": unknown op '" + name + "'");
}
}  // namespace

bool is_random_op(Op op) {
  switch (op) {
    case Op::Resize:
    case Op::CenterCrop:
    case Op::ToTensor:
    case Op::Normalize:
      return false;
    default:
      return true;
  }
}

bool TransformSpec::deterministic() const {
  for (const auto& op : ops)
    if (is_random_op(op.kind)) return false;
  return true;
}

namespace {

// The fields each op's spec carries, all required: lib/transform.ts writes every one (its builders hold the
// defaults); a missing or unknown field is an error naming it.
const std::vector<std::string>& op_fields(Op op) {
  static const std::map<Op, std::vector<std::string>> fields = {
      {Op::Resize, {"size", "interpolation", "antialias"}},
      {Op::CenterCrop, {"size"}},
      {Op::RandomCrop, {"size", "padding", "padIfNeeded", "fill"}},
      {Op::RandomResizedCrop, {"size", "scale", "ratio", "interpolation", "antialias"}},
      {Op::RandomRotation, {"degrees", "interpolation", "fill"}},
      {Op::RandomHorizontalFlip, {"p"}},
      {Op::RandomVerticalFlip, {"p"}},
      {Op::ColorJitter, {"brightness", "contrast", "saturation", "hue"}},
      {Op::RandomGrayscale, {"p"}},
      {Op::RandomErasing, {"p", "scale", "ratio", "value"}},
      {Op::ToTensor, {}},
      {Op::Normalize, {"mean", "std"}},
  };
  return fields.at(op);
}

// Reads field `k` of `o` as T; it must be present.
template <typename T>
T need(const nlohmann::json& o, const char* k, const std::string& where) {
  if (!o.contains(k)) throw std::invalid_argument(where + ": missing field " + k);
  return o.at(k).get<T>();
}

// A [min, max] pair.
std::vector<double> need_pair(const nlohmann::json& o, const char* k, const std::string& where) {
  auto v = need<std::vector<double>>(o, k, where);
  if (v.size() != 2) throw std::invalid_argument(where + ": " + k + " must be [min, max]");
  return v;
}

TransformOp parse_op_spec(const nlohmann::json& o, const std::string& where) {
  if (!o.is_object()) throw std::invalid_argument(where + ": expected an object");
  TransformOp op;
  op.kind = parse_op(need<std::string>(o, "op", where), where);
  const auto& fields = op_fields(op.kind);
  for (const auto& [key, value] : o.items())
    if (key != "op" && std::find(fields.begin(), fields.end(), key) == fields.end())
      throw std::invalid_argument(where + ": unknown field " + key + " for op " + op_name(op.kind));
  switch (op.kind) {
    case Op::Resize:
    case Op::RandomResizedCrop:
      op.size = need<std::vector<int64_t>>(o, "size", where);
      op.interp = parse_interp(need<std::string>(o, "interpolation", where), where);
      op.antialias = need<bool>(o, "antialias", where);
      if (op.kind == Op::RandomResizedCrop) {
        op.scale = need_pair(o, "scale", where);
        op.ratio = need_pair(o, "ratio", where);
      }
      break;
    case Op::CenterCrop:
      op.size = need<std::vector<int64_t>>(o, "size", where);
      break;
    case Op::RandomCrop:
      op.size = need<std::vector<int64_t>>(o, "size", where);
      op.padding = need<std::vector<int64_t>>(o, "padding", where);
      op.pad_if_needed = need<bool>(o, "padIfNeeded", where);
      op.fill = need<double>(o, "fill", where);
      break;
    case Op::RandomRotation: {
      auto deg = need_pair(o, "degrees", where);
      op.deg_min = deg[0];
      op.deg_max = deg[1];
      op.interp = parse_interp(need<std::string>(o, "interpolation", where), where);
      op.fill = need<double>(o, "fill", where);
      break;
    }
    case Op::RandomHorizontalFlip:
    case Op::RandomVerticalFlip:
    case Op::RandomGrayscale:
      op.p = need<double>(o, "p", where);
      break;
    case Op::ColorJitter: {  // [min, max], or [] where that property is not jittered
      auto range = [&](const char* k) {
        auto v = need<std::vector<double>>(o, k, where);
        if (!v.empty() && v.size() != 2) throw std::invalid_argument(where + ": " + k + " must be [min, max] or []");
        return v;
      };
      op.brightness = range("brightness");
      op.contrast = range("contrast");
      op.saturation = range("saturation");
      op.hue = range("hue");
      break;
    }
    case Op::RandomErasing:
      op.p = need<double>(o, "p", where);
      op.scale = need_pair(o, "scale", where);
      op.ratio = need_pair(o, "ratio", where);
      op.erase_value = need<double>(o, "value", where);
      break;
    case Op::ToTensor:
      break;
    case Op::Normalize:
      op.mean = need<std::vector<double>>(o, "mean", where);
      op.std = need<std::vector<double>>(o, "std", where);
      break;
  }
  return op;
}

}  // namespace

TransformSpec parse_transform_spec(const std::string& text) {
  TransformSpec spec;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("transform spec is not valid JSON: ") + e.what());
  }
  if (!j.is_array()) throw std::invalid_argument("transform spec must be an array of operations");
  size_t idx = 0;
  for (const auto& o : j) {
    const std::string where = "transform[" + std::to_string(idx++) + "]";
    try {
      spec.ops.push_back(parse_op_spec(o, where));
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(where + ": " + e.what());
    }
  }
  return spec;
}

namespace {

torch::Tensor random_crop(torch::Tensor img, const TransformOp& op, SampleRng& rng) {
  const int64_t th = op.size[0], tw = op.size.size() > 1 ? op.size[1] : op.size[0];
  if (op.padding.size() == 4) img = pad_const(img, op.padding[0], op.padding[1], op.padding[2], op.padding[3], op.fill);
  if (op.pad_if_needed) {  // as torchvision: the missing width (height) is padded on both sides
    if (img.size(2) < tw) img = pad_const(img, tw - img.size(2), 0, tw - img.size(2), 0, op.fill);
    if (img.size(1) < th) img = pad_const(img, 0, th - img.size(1), 0, th - img.size(1), op.fill);
  }
  const int64_t h = img.size(1), w = img.size(2);
  if (h < th || w < tw)
    throw std::invalid_argument("randomCrop: crop " + std::to_string(th) + "x" + std::to_string(tw) + " is larger than the image " +
                                std::to_string(h) + "x" + std::to_string(w));
  const int64_t i = rng.randint(0, h - th + 1), j = rng.randint(0, w - tw + 1);
  return crop(img, i, j, th, tw);
}

// torchvision's RandomResizedCrop.get_params: 10 attempts, then a central crop at the nearest allowed ratio.
torch::Tensor random_resized_crop(const torch::Tensor& img, const TransformOp& op, SampleRng& rng) {
  const int64_t height = img.size(1), width = img.size(2);
  const double area = static_cast<double>(height) * width;
  const double lr0 = std::log(op.ratio[0]), lr1 = std::log(op.ratio[1]);
  int64_t top = -1, left = 0, ch = height, cw = width;
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * rng.uniform(op.scale[0], op.scale[1]);
    double aspect = std::exp(rng.uniform(lr0, lr1));
    int64_t w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      top = rng.randint(0, height - h + 1);
      left = rng.randint(0, width - w + 1);
      ch = h;
      cw = w;
      break;
    }
  }
  if (top < 0) {  // fallback: central crop
    double in_ratio = static_cast<double>(width) / height;
    if (in_ratio < std::min(op.ratio[0], op.ratio[1])) {
      cw = width;
      ch = static_cast<int64_t>(std::nearbyint(cw / std::min(op.ratio[0], op.ratio[1])));
    } else if (in_ratio > std::max(op.ratio[0], op.ratio[1])) {
      ch = height;
      cw = static_cast<int64_t>(std::nearbyint(ch * std::max(op.ratio[0], op.ratio[1])));
    } else {
      cw = width;
      ch = height;
    }
    top = (height - ch) / 2;
    left = (width - cw) / 2;
  }
  std::vector<int64_t> out = op.size.size() == 1 ? std::vector<int64_t>{op.size[0], op.size[0]} : op.size;
  return resize(crop(img, top, left, ch, cw), out, op.interp, op.antialias);
}

// Rotation; fused with a following center crop (only the kept pixels are computed, same values): returns true
// when it consumed `next`.
bool random_rotation(torch::Tensor* img, const TransformOp& op, const TransformOp* next, SampleRng& rng) {
  const double angle = op.deg_min == op.deg_max ? op.deg_min : rng.uniform(op.deg_min, op.deg_max);
  const int64_t h = img->size(1), w = img->size(2);
  if (next && next->kind == Op::CenterCrop) {
    const int64_t ch = next->size[0], cw = next->size.size() > 1 ? next->size[1] : next->size[0];
    if (ch <= h && cw <= w) {
      const int64_t top = static_cast<int64_t>(std::nearbyint((h - ch) / 2.0));
      const int64_t left = static_cast<int64_t>(std::nearbyint((w - cw) / 2.0));
      *img = rotate_window(*img, angle, op.interp, op.fill, top, left, ch, cw);
      return true;
    }
  }
  *img = rotate(*img, angle, op.interp, op.fill);
  return false;
}

// toTensor; fused with a following normalize into one pass (into `out` when it is the last op): returns true when
// it consumed `next`.
bool to_tensor(torch::Tensor* img, const TransformOp* next, bool next_is_last, const torch::Tensor* out) {
  if (is_uint8(*img) && next && next->kind == Op::Normalize && next->mean.size() == static_cast<size_t>(img->size(0)) &&
      next->std.size() == next->mean.size()) {
    *img = to_tensor_normalize(*img, next->mean, next->std, next_is_last ? out : nullptr);
    return true;
  }
  if (is_uint8(*img)) *img = img->to(torch::kFloat32).div_(255.0);
  return false;
}

torch::Tensor normalize(const torch::Tensor& img, const TransformOp& op) {
  if (is_uint8(img)) throw std::invalid_argument("normalize needs a float image: put toTensor before it");
  auto mean = torch::tensor(op.mean, torch::kFloat32).view({-1, 1, 1});
  auto std = torch::tensor(op.std, torch::kFloat32).view({-1, 1, 1});
  return img.sub(mean).div_(std);
}

}  // namespace

torch::Tensor apply_transforms(const TransformSpec& spec, torch::Tensor img, SampleRng& rng, const torch::Tensor* out) {
  for (size_t oi = 0; oi < spec.ops.size(); ++oi) {
    const auto& op = spec.ops[oi];
    const TransformOp* next = oi + 1 < spec.ops.size() ? &spec.ops[oi + 1] : nullptr;
    switch (op.kind) {
      case Op::Resize:
        img = resize(img, op.size, op.interp, op.antialias);
        break;
      case Op::CenterCrop:
        img = center_crop(img, op.size[0], op.size.size() > 1 ? op.size[1] : op.size[0]);
        break;
      case Op::RandomCrop:
        img = random_crop(img, op, rng);
        break;
      case Op::RandomResizedCrop:
        img = random_resized_crop(img, op, rng);
        break;
      case Op::RandomRotation:
        if (random_rotation(&img, op, next, rng)) ++oi;
        break;
      case Op::ToTensor:
        if (to_tensor(&img, next, oi + 2 == spec.ops.size(), out)) ++oi;
        break;
      case Op::Normalize:
        img = normalize(img, op);
        break;
      case Op::RandomHorizontalFlip:
      case Op::RandomVerticalFlip:
      case Op::ColorJitter:
      case Op::RandomGrayscale:
      case Op::RandomErasing:
        // the draws and the op as the batched (deferred) path has them, so both give the same images
        img = apply_tail_one(img, op, draw_tail(op, rng, img.size(-2), img.size(-1)));
        break;
    }
  }
  return img.contiguous();
}

}  // namespace tl
