#include "data/decode.h"

#include <csetjmp>
#include <cstring>
#include <fstream>
#include <vector>

#ifdef TL_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif
#ifdef TL_HAVE_PNG
#include <png.h>
#endif

namespace tl {
namespace {

void check_pixels(int64_t w, int64_t h, const DecodeOptions& o, const std::string& what) {
  if (w <= 0 || h <= 0) throw ImageError(what + ": invalid image size " + std::to_string(w) + "x" + std::to_string(h));
  if (w * h > o.max_pixels)
    throw ImageError(what + ": image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels exceeds the limit of " +
                     std::to_string(o.max_pixels) + " (possible decompression bomb)");
}

// Planar copy in one pass (a strided ATen copy of a permuted uint8 tensor is several times slower).
torch::Tensor hwc_to_chw(const torch::Tensor& hwc) {
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2), n = h * w;
  auto out = torch::empty({c, h, w}, torch::kUInt8);
  const uint8_t* s = hwc.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k) o[k * n + i] = s[i * c + k];
  return out;
}

#ifdef TL_HAVE_TURBOJPEG
// One decompressor per thread. libjpeg leaves its state machine wherever an error longjmp'ed out of it, and
// TurboJPEG 2.x does not always reset it: a handle that failed once can fail every later image ("Bogus marker
// length" for files that decode fine elsewhere). So a failed handle is destroyed and the next call starts from a
// fresh one: decoding is a pure function of the bytes and options, whatever the thread decoded before.
struct TjHandle {
  tjhandle h = nullptr;
  tjhandle get() {
    if (!h) h = tjInitDecompress();
    return h;
  }
  void reset() {
    if (h) tjDestroy(h);
    h = nullptr;
  }
  ~TjHandle() { reset(); }
};

// Throws ImageError with libjpeg-turbo's message and drops the (possibly poisoned) handle.
[[noreturn]] void jpeg_fail(TjHandle& tj, const std::string& what, const char* kind) {
  std::string msg = what + ": " + kind + ": " + tjGetErrorStr2(tj.h);
  tj.reset();
  throw ImageError(msg);
}

torch::Tensor decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& o, const std::string& what) {
  thread_local TjHandle tj;
  if (!tj.get()) throw ImageError(what + ": cannot initialise libjpeg-turbo");
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.h, data, static_cast<unsigned long>(size), &w, &h, &subsamp, &colorspace) != 0)
    jpeg_fail(tj, what, "corrupt JPEG header");
  check_pixels(w, h, o, what);
  int sw = w, sh = h;
  if (o.min_short_side > 0) {
    int n = 0;
    tjscalingfactor* factors = tjGetScalingFactors(&n);
    for (int i = 0; i < n; ++i) {
      const auto& f = factors[i];
      if (f.num > f.denom) continue;
      int cw = TJSCALED(w, f), ch = TJSCALED(h, f);
      if (std::min(cw, ch) >= o.min_short_side && cw * ch < sw * sh) {
        sw = cw;
        sh = ch;
      }
    }
  }
  // No TJFLAG_STOPONWARNING: libjpeg-turbo still reports warnings (e.g. premature end of data) as failures,
  // which matches PIL refusing truncated files by default.
  const int flags = 0;
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    auto cmyk = torch::empty({sh, sw, 4}, torch::kUInt8);
    if (tjDecompress2(tj.h, data, static_cast<unsigned long>(size), cmyk.data_ptr<uint8_t>(), sw, 0, sh, TJPF_CMYK, flags) != 0)
      jpeg_fail(tj, what, "corrupt JPEG data");
    // Adobe CMYK JPEGs store inverted values; PIL inverts them back ("CMYK;I") and converts with
    // R = 255 - min(255, C + K), i.e. in stored values R = clamp(c + k - 255, 0, 255).
    auto c = cmyk.to(torch::kInt32);
    auto k = c.select(2, 3).unsqueeze(2);
    auto rgb = (c.narrow(2, 0, 3) + k - 255).clamp(0, 255).to(torch::kUInt8);
    return hwc_to_chw(rgb);
  }
  auto rgb = torch::empty({sh, sw, 3}, torch::kUInt8);
  if (tjDecompress2(tj.h, data, static_cast<unsigned long>(size), rgb.data_ptr<uint8_t>(), sw, 0, sh, TJPF_RGB, flags) != 0) {
    // TJERR_WARNING: e.g. premature end of data. PIL refuses truncated files by default; so do we.
    jpeg_fail(tj, what, tjGetErrorCode(tj.h) == TJERR_FATAL ? "corrupt JPEG data" : "truncated or corrupt JPEG");
  }
  return hwc_to_chw(rgb);
}
#endif

#ifdef TL_HAVE_PNG
struct PngReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

void png_read_cb(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->size) png_error(png, "truncated PNG data");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

void png_error_cb(png_structp png, png_const_charp msg) {
  auto* err = static_cast<std::string*>(png_get_error_ptr(png));
  if (err) *err = msg;
  png_longjmp(png, 1);
}
void png_warning_cb(png_structp, png_const_charp) {}

torch::Tensor decode_png(const uint8_t* data, size_t size, const DecodeOptions& o, const std::string& what) {
  std::string err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_cb, png_warning_cb);
  if (!png) throw ImageError(what + ": cannot initialise libpng");
  png_infop info = png_create_info_struct(png);
  PngReader reader{data, size, 0};
  torch::Tensor out;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw ImageError(what + ": corrupt PNG: " + (err.empty() ? "decode error" : err));
  }
  png_set_read_fn(png, &reader, png_read_cb);
  png_set_user_limits(png, 1u << 24, 1u << 24);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
  if (static_cast<int64_t>(w) * h > o.max_pixels) {
    png_destroy_read_struct(&png, &info, nullptr);
    check_pixels(w, h, o, what);
  }
  // PIL's convert('RGB'): palette -> RGB, grey -> replicated, alpha and tRNS dropped, 16-bit colour -> high byte.
  // 16-bit greyscale opens in PIL as mode "I" and converts by clipping to 255: read it raw and do the same.
  if (ct == PNG_COLOR_TYPE_GRAY && depth == 16) {
    png_set_swap(png);  // native little-endian uint16
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    auto raw = torch::empty({static_cast<int64_t>(h), static_cast<int64_t>(w)}, torch::kInt16);
    rows.resize(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = reinterpret_cast<png_bytep>(raw.data_ptr<int16_t>() + static_cast<size_t>(y) * w);
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    auto v = raw.to(torch::kInt32).bitwise_and(0xFFFF).clamp(0, 255).to(torch::kUInt8);
    return v.unsqueeze(0).expand({3, v.size(0), v.size(1)}).contiguous();
  }
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);
  if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) png_error(png, "unexpected PNG row layout");
  out = torch::empty({static_cast<int64_t>(h), static_cast<int64_t>(w), 3}, torch::kUInt8);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = out.data_ptr<uint8_t>() + static_cast<size_t>(y) * w * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return hwc_to_chw(out);
}
#endif

}  // namespace

torch::Tensor decode_image(const uint8_t* data, size_t size, const DecodeOptions& opts, const std::string& what) {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
#ifdef TL_HAVE_TURBOJPEG
    return decode_jpeg(data, size, opts, what);
#else
    throw ImageError(what + ": JPEG support was not built (libturbojpeg missing)");
#endif
  }
  if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
#ifdef TL_HAVE_PNG
    return decode_png(data, size, opts, what);
#else
    throw ImageError(what + ": PNG support was not built (libpng missing)");
#endif
  }
  if (size == 0) throw ImageError(what + ": empty file");
  throw ImageError(what + ": not a JPEG or PNG image (unrecognised signature)");
}

torch::Tensor decode_file(const std::string& path, const DecodeOptions& opts) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw ImageError(path + ": cannot open file");
  auto n = static_cast<size_t>(in.tellg());
  in.seekg(0);
  std::vector<uint8_t> buf(n);
  if (n && !in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(n)))
    throw ImageError(path + ": read error");
  return decode_image(buf.data(), buf.size(), opts, path);
}

std::vector<uint8_t> encode_jpeg(const torch::Tensor& chw, int quality) {
  if (chw.scalar_type() != torch::kUInt8 || chw.dim() != 3 || (chw.size(0) != 3 && chw.size(0) != 1))
    throw std::invalid_argument("encode_jpeg expects a uint8 tensor [3|1, H, W]");
  if (quality < 1 || quality > 100) throw std::invalid_argument("JPEG quality must be in 1..100");
#ifdef TL_HAVE_TURBOJPEG
  const bool grey = chw.size(0) == 1;
  const int h = static_cast<int>(chw.size(1)), w = static_cast<int>(chw.size(2));
  auto hwc = chw.permute({1, 2, 0}).contiguous();
  struct Compressor {
    tjhandle h = tjInitCompress();
    ~Compressor() {
      if (h) tjDestroy(h);
    }
  } tj;
  if (!tj.h) throw ImageError("cannot initialise the libjpeg-turbo encoder");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  if (tjCompress2(tj.h, hwc.data_ptr<uint8_t>(), w, 0, h, grey ? TJPF_GRAY : TJPF_RGB, &out, &size, grey ? TJSAMP_GRAY : TJSAMP_420,
                  quality, TJFLAG_ACCURATEDCT) != 0) {
    std::string msg = tjGetErrorStr2(tj.h);
    if (out) tjFree(out);
    throw ImageError("JPEG encoding failed: " + msg);
  }
  std::vector<uint8_t> bytes(out, out + size);
  tjFree(out);
  return bytes;
#else
  (void)quality;
  throw ImageError("this build has no libjpeg-turbo: JPEG encoding is unavailable");
#endif
}

}  // namespace tl
