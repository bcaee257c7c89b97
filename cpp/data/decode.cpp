#include "data/decode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <fstream>
#include <vector>

#ifdef TL_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif
#ifdef TL_HAVE_LIBJPEG
#include <jerror.h>
#include <jpeglib.h>
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

// Both decoders report errors through setjmp/longjmp. A longjmp must not skip a C++ destructor, so every libpng or
// libjpeg call runs inside a small "phase" function whose own locals are trivial; buffers and tensors live in the
// caller, which frees them normally whichever way the phase ends.

#ifdef TL_HAVE_LIBJPEG
// Progressive JPEGs may hold any number of scans, each a full pass over the coefficients; a crafted file can make
// decoding take minutes. libjpeg-turbo 3 added the same kind of limit (TJPARAM_SCANLIMIT).
constexpr int kMaxJpegScans = 1000;

struct JpegJob {  // trivially destructible: it lives across setjmp
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  std::jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
  char warning[JMSG_LENGTH_MAX];
  int warnings;
  bool eof;  // libjpeg ran out of data (it then pads with an EOI marker and goes on)
  bool created;
};

void jpeg_error_exit_cb(j_common_ptr c) {
  auto* j = static_cast<JpegJob*>(c->client_data);
  (*c->err->format_message)(c, j->msg);
  std::longjmp(j->jb, 1);
}

// Warnings (level < 0) are counted, not printed; trace messages (level >= 0) are dropped.
void jpeg_emit_message_cb(j_common_ptr c, int level) {
  if (level >= 0) return;
  auto* j = static_cast<JpegJob*>(c->client_data);
  c->err->num_warnings++;
  if (c->err->msg_code == JWRN_JPEG_EOF) j->eof = true;
  if (j->warnings++ == 0) (*c->err->format_message)(c, j->warning);
}

void jpeg_progress_cb(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  auto* j = static_cast<JpegJob*>(c->client_data);
  if (d->input_scan_number > kMaxJpegScans) {
    std::snprintf(j->msg, sizeof j->msg, "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(j->jb, 1);
  }
}

bool jpeg_phase_header(JpegJob* j, const uint8_t* data, size_t size) {
  j->cinfo.err = jpeg_std_error(&j->err);
  j->err.error_exit = jpeg_error_exit_cb;
  j->err.emit_message = jpeg_emit_message_cb;
  j->cinfo.client_data = j;
  if (setjmp(j->jb)) return false;
  jpeg_create_decompress(&j->cinfo);
  j->created = true;
  j->progress.progress_monitor = jpeg_progress_cb;
  j->cinfo.progress = &j->progress;
  jpeg_mem_src(&j->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&j->cinfo, TRUE);
  return true;
}

bool jpeg_phase_start(JpegJob* j) {
  if (setjmp(j->jb)) return false;
  jpeg_start_decompress(&j->cinfo);
  return true;
}

// Reads every scanline.
bool jpeg_phase_read(JpegJob* j, uint8_t* out, size_t stride) {
  if (setjmp(j->jb)) return false;
  while (j->cinfo.output_scanline < j->cinfo.output_height) {
    JSAMPROW row = out + static_cast<size_t>(j->cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&j->cinfo, &row, 1);
  }
  return true;
}

// PIL finishes the decompression after the last scanline: an error there (a damaged marker after the image data)
// refuses the file; running out of data there does not.
bool jpeg_phase_finish(JpegJob* j) {
  if (setjmp(j->jb)) return false;
  jpeg_finish_decompress(&j->cinfo);
  return true;
}

struct JpegGuard {
  JpegJob* j;
  ~JpegGuard() {
    if (j->created) jpeg_destroy_decompress(&j->cinfo);
  }
};

[[noreturn]] void jpeg_fail(const JpegJob& j, const std::string& what, const char* kind) {
  throw ImageError(what + ": " + kind + ": " + j.msg);
}

// After a warning, a PIL-like decode keeps the image unless libjpeg ran out of data (PIL: "image file is truncated",
// as long as LOAD_TRUNCATED_IMAGES is off); `strict` refuses any warning.
void jpeg_check_warnings(const JpegJob& j, const DecodeOptions& o, const std::string& what) {
  if (j.eof) throw ImageError(what + ": truncated JPEG (premature end of data)");
  if (j.warnings && o.strict) throw ImageError(what + ": corrupt JPEG data (strict decoding): " + j.warning);
}

torch::Tensor decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& o, const std::string& what) {
  auto job = std::make_unique<JpegJob>();  // value-initialised: all zero
  JpegJob* j = job.get();
  JpegGuard guard{j};
  if (!jpeg_phase_header(j, data, size)) jpeg_fail(*j, what, "corrupt JPEG header");
  jpeg_check_warnings(*j, o, what);
  auto& ci = j->cinfo;
  check_pixels(ci.image_width, ci.image_height, o, what);
  if (o.min_short_side > 0) {
    // DCT-domain downscaling: the smallest of libjpeg's scales n/8 (as TurboJPEG lists them) that keeps the
    // shorter side >= min_short_side.
    static const int kScales[][2] = {{1, 1}, {7, 8}, {3, 4}, {5, 8}, {1, 2}, {3, 8}, {1, 4}, {1, 8}};
    auto scaled = [](int64_t d, const int* f) { return (d * f[0] + f[1] - 1) / f[1]; };
    for (const auto& f : kScales) {
      int64_t cw = scaled(ci.image_width, f), ch = scaled(ci.image_height, f);
      if (std::min(cw, ch) < o.min_short_side) break;
      ci.scale_num = f[0];
      ci.scale_denom = f[1];
    }
  }
  const bool cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
  ci.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  if (!jpeg_phase_start(j)) jpeg_fail(*j, what, "corrupt JPEG data");
  jpeg_check_warnings(*j, o, what);
  const int64_t w = ci.output_width, h = ci.output_height, c = ci.output_components;
  if (c != (cmyk ? 4 : 3)) throw ImageError(what + ": unsupported JPEG colour layout");
  auto hwc = torch::empty({h, w, c}, torch::kUInt8);
  if (!jpeg_phase_read(j, hwc.data_ptr<uint8_t>(), static_cast<size_t>(w * c))) jpeg_fail(*j, what, "corrupt JPEG data");
  jpeg_check_warnings(*j, o, what);
  if (!jpeg_phase_finish(j)) jpeg_fail(*j, what, "corrupt JPEG data after the image");
  if (o.strict) jpeg_check_warnings(*j, o, what);  // anything finishing reported; lenient: as PIL, ignored
  if (cmyk) {
    // Adobe CMYK JPEGs store inverted values; PIL inverts them back ("CMYK;I") and converts (cmyk2rgb) with
    // nk = 255 - K, R = nk - muldiv255(C, nk); in stored values nk = k and C = 255 - c. muldiv255 is PIL's
    // rounded integer a*b/255: t = a*b + 128, ((t >> 8) + t) >> 8.
    auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
    const uint8_t* in = hwc.data_ptr<uint8_t>();
    uint8_t* o3 = rgb.data_ptr<uint8_t>();
    for (int64_t i = 0, n = h * w; i < n; ++i, in += 4, o3 += 3) {
      const int k = in[3];
      for (int ch = 0; ch < 3; ++ch) {
        const int t = (255 - in[ch]) * k + 128;
        o3[ch] = static_cast<uint8_t>(std::max(0, k - (((t >> 8) + t) >> 8)));
      }
    }
    hwc = rgb;
  }
  return hwc_to_chw(hwc);
}
#endif

#ifdef TL_HAVE_PNG
struct PngJob {  // trivially destructible: it lives across setjmp
  png_structp png;
  png_infop info;
  const uint8_t* data;
  size_t size;
  size_t pos;
  char msg[256];
  png_uint_32 w, h;
  int depth, color_type;
  int64_t rows_done;  // rows (of every interlace pass) fully decoded so far
};

void png_row_done_cb(png_structp png, png_row_infop, png_bytep) {
  static_cast<PngJob*>(png_get_io_ptr(png))->rows_done++;
}

// Rows carrying data over all passes: h, or for Adam7 the rows of each pass that has columns.
int64_t png_data_rows(const PngJob& j, int passes) {
  if (passes == 1) return j.h;
  int64_t n = 0;
  for (int p = 0; p < 7; ++p)
    if (PNG_PASS_COLS(j.w, p) > 0) n += PNG_PASS_ROWS(j.h, p);
  return n;
}

void png_read_cb(png_structp png, png_bytep out, png_size_t n) {
  auto* j = static_cast<PngJob*>(png_get_io_ptr(png));
  if (n > j->size - j->pos) png_error(png, "truncated PNG data");
  std::memcpy(out, j->data + j->pos, n);
  j->pos += n;
}

void png_error_cb(png_structp png, png_const_charp msg) {
  auto* j = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(j->msg, sizeof j->msg, "%s", msg);
  png_longjmp(png, 1);
}
void png_warning_cb(png_structp, png_const_charp) {}

bool png_phase_info(PngJob* j, const DecodeOptions* o) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  png_set_read_fn(j->png, j, png_read_cb);
  png_set_user_limits(j->png, 1u << 24, 1u << 24);
  // Text, ICC and other ancillary chunks: at most 8 MB decompressed (libpng's default is unlimited).
  png_set_chunk_malloc_max(j->png, 8u << 20);
  // PIL checks the CRC of every chunk before the image data (a mismatch is "broken PNG file"): so do we.
  png_set_crc_action(j->png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(j->png, j->info);
  j->w = png_get_image_width(j->png, j->info);
  j->h = png_get_image_height(j->png, j->info);
  j->depth = png_get_bit_depth(j->png, j->info);
  j->color_type = png_get_color_type(j->png, j->info);
  if (!o->strict) {
    // PIL reads the image data without checking its chunks' CRCs; strict decoding checks them.
    png_set_crc_action(j->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
  }
  return true;
}

// PIL's convert('RGB'): palette -> RGB, grey -> replicated, alpha and tRNS dropped, 16-bit colour -> high byte.
// 16-bit greyscale (`raw16`) opens in PIL as mode "I" and converts by clipping to 255: read raw, clip later.
bool png_phase_setup(PngJob* j, bool raw16, size_t expect_rowbytes) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  const int ct = j->color_type, depth = j->depth;
  if (raw16) {
    png_set_swap(j->png);  // native little-endian uint16
  } else {
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(j->png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(j->png);
    if (depth == 16) png_set_strip_16(j->png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(j->png);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(j->png);
  }
  png_set_interlace_handling(j->png);
  // counts decoded rows: an error after the last one (in the data that follows) is not a broken image to PIL
  png_set_read_user_transform_fn(j->png, png_row_done_cb);
  png_read_update_info(j->png, j->info);
  if (png_get_rowbytes(j->png, j->info) != expect_rowbytes) png_error(j->png, "unexpected PNG row layout");
  return true;
}

// Reads the pixels; what follows the image data is not read (PIL ignores it too).
bool png_phase_read(PngJob* j, png_bytepp rows) {
  if (setjmp(png_jmpbuf(j->png))) return false;
  png_read_image(j->png, rows);
  return true;
}

struct PngGuard {
  PngJob* j;
  ~PngGuard() {
    if (j->png) png_destroy_read_struct(&j->png, j->info ? &j->info : nullptr, nullptr);
  }
};

torch::Tensor decode_png(const uint8_t* data, size_t size, const DecodeOptions& o, const std::string& what) {
  auto job = std::make_unique<PngJob>();  // value-initialised: all zero
  PngJob* j = job.get();
  PngGuard guard{j};
  j->data = data;
  j->size = size;
  j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_error_cb, png_warning_cb);
  if (!j->png) throw ImageError(what + ": cannot initialise libpng");
  j->info = png_create_info_struct(j->png);
  if (!j->info) throw ImageError(what + ": cannot initialise libpng");
  auto fail = [&]() { throw ImageError(what + ": corrupt PNG: " + (j->msg[0] ? j->msg : "decode error")); };
  if (!png_phase_info(j, &o)) fail();
  check_pixels(j->w, j->h, o, what);
  const int64_t w = j->w, h = j->h;
  const bool raw16 = j->color_type == PNG_COLOR_TYPE_GRAY && j->depth == 16;
  if (!png_phase_setup(j, raw16, static_cast<size_t>(w) * (raw16 ? 2 : 3))) fail();
  auto out = raw16 ? torch::empty({h, w}, torch::kInt16) : torch::empty({h, w, 3}, torch::kUInt8);
  const size_t stride = static_cast<size_t>(w) * (raw16 ? 2 : 3);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  auto* base = static_cast<uint8_t*>(out.data_ptr());
  for (int64_t y = 0; y < h; ++y) rows[y] = base + static_cast<size_t>(y) * stride;
  const int passes = png_get_interlace_type(j->png, j->info) == PNG_INTERLACE_NONE ? 1 : 7;
  // PIL stops reading once it has every row: damage after the image data (a chunk that does not parse, zlib's
  // trailing checksum) is only refused by strict decoding.
  if (!png_phase_read(j, rows.data()) && (o.strict || j->rows_done < png_data_rows(*j, passes))) fail();
  if (raw16) {
    auto v = out.to(torch::kInt32).bitwise_and(0xFFFF).clamp(0, 255).to(torch::kUInt8);
    return v.unsqueeze(0).expand({3, h, w}).contiguous();
  }
  return hwc_to_chw(out);
}
#endif

}  // namespace

torch::Tensor decode_image(const uint8_t* data, size_t size, const DecodeOptions& opts, const std::string& what) {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
#ifdef TL_HAVE_LIBJPEG
    return decode_jpeg(data, size, opts, what);
#else
    throw ImageError(what + ": JPEG support was not built (libjpeg missing)");
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
