#include "image/decode.hpp"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/errors.hpp"

// libjpeg (libjpeg-turbo, the library OpenCV decodes JPEG with) for the entropy-data check.
#include <jpeglib.h>
#include <jerror.h>
// libpng (the library OpenCV decodes PNG with), called directly so that its messages come back
// to us instead of being printed on the process's stderr.
#include <png.h>

namespace lookalike::image {
namespace {

[[noreturn]] void bad(const std::string &msg, const std::string &detail = {}) {
  throw Error(sqlstate::kInvalidBinaryRepresentation, msg, detail);
}

uint32_t be16(const uint8_t *p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t *p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t *p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
uint32_t le24(const uint8_t *p) { return le16(p) | (uint32_t(p[2]) << 16); }
uint32_t le32(const uint8_t *p) { return le16(p) | (le16(p + 2) << 16); }

// Markers that stand alone (no length field): TEM, RST0..7, SOI, EOI.
bool jpeg_standalone(uint8_t m) { return m == 0x01 || (m >= 0xD0 && m <= 0xD9); }
// Start-of-frame markers SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
bool jpeg_sof(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

Header jpeg_header(const uint8_t *d, size_t n) {
  // Walk the marker segments up to the first start-of-frame.
  size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) bad("corrupt JPEG image: bad marker");
    uint8_t m = d[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // markers without a length
      i += 2;
      continue;
    }
    if (m == 0xD9 || m == 0xDA) break;  // end of image / start of scan before any frame header
    uint32_t seglen = be16(d + i + 2);
    if (seglen < 2) bad("corrupt JPEG image: bad segment length");
    if (jpeg_sof(m)) {
      if (i + 9 > n) break;
      return {Format::kJpeg, be16(d + i + 7), be16(d + i + 5)};
    }
    i += 2 + seglen;
  }
  bad("truncated or corrupt JPEG image: no frame header");
}

// JPEG: every marker segment lies inside the data, the frame header comes before the first
// scan, each scan's entropy-coded data is followed by a marker, and the stream reaches EOI.
void jpeg_structure(const uint8_t *d, size_t n) {
  const char *trunc = "truncated JPEG image";
  size_t i = 2;
  bool frame = false, scan = false;
  for (;;) {
    if (i >= n) bad(trunc, "The data ends before the end-of-image marker.");
    if (d[i] != 0xFF) bad("corrupt JPEG image: bad marker");
    while (i + 1 < n && d[i + 1] == 0xFF) ++i;  // fill bytes
    if (i + 1 >= n) bad(trunc, "The data ends before the end-of-image marker.");
    uint8_t m = d[i + 1];
    if (m == 0xD9) break;  // EOI: trailing bytes after it are ignored, as libjpeg does
    if (m == 0x00 || m == 0xD8) bad("corrupt JPEG image: bad marker");
    if (jpeg_standalone(m)) {
      i += 2;
      continue;
    }
    if (i + 4 > n) bad(trunc, "The data ends inside a marker segment.");
    size_t seglen = be16(d + i + 2);
    if (seglen < 2) bad("corrupt JPEG image: bad segment length");
    if (i + 2 + seglen > n) bad(trunc, "The data ends inside a marker segment.");
    if (jpeg_sof(m)) {
      if (seglen < 8) bad("corrupt JPEG image: bad frame header");
      frame = true;
    }
    i += 2 + seglen;
    if (m != 0xDA) continue;
    // Start of scan: skip the entropy-coded data up to the next marker (FF followed by neither
    // a stuffed zero nor a restart marker).
    if (!frame) bad("corrupt JPEG image: scan before the frame header");
    scan = true;
    for (;;) {
      const void *ff = i < n ? std::memchr(d + i, 0xFF, n - i) : nullptr;
      if (ff == nullptr) bad(trunc, "The data ends inside the entropy-coded data.");
      i = static_cast<size_t>(static_cast<const uint8_t *>(ff) - d);
      if (i + 1 >= n) bad(trunc, "The data ends inside the entropy-coded data.");
      uint8_t next = d[i + 1];
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        i += 2;
      } else if (next == 0xFF) {
        i += 1;
      } else {
        break;  // a marker: back to the segment walk
      }
    }
  }
  if (!frame || !scan) bad("corrupt JPEG image: no image data");
}

// JPEG entropy-coded data. libjpeg reports corrupt data (a bad Huffman code, a scan that ends
// early, data before a marker...) only as warnings and fills the rest of the image with grey;
// cv::imdecode passes such an image on. This pass decodes the coefficients (no IDCT, no colour
// conversion) with those warnings turned into errors. C-style on purpose: libjpeg reports
// failures by longjmp back to jpeg_entropy_check(), whose frame holds no C++ object.
struct JpegCheck {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_check_error_exit(j_common_ptr cinfo) {
  JpegCheck *c = reinterpret_cast<JpegCheck *>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, c->message);
  std::longjmp(c->jump, 1);
}

void jpeg_check_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  switch (cinfo->err->msg_code) {
    case JWRN_ARITH_BAD_CODE:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_JPEG_EOF:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      jpeg_check_error_exit(cinfo);  // corrupt data: an error
    default:
      return;  // benign (unknown JFIF revision, Adobe transform, ICC marker...): ignored
  }
}

// Returns false, with libjpeg's message in `message`, if the data is corrupt.
bool jpeg_entropy_check(const uint8_t *d, size_t n, char *message) {
  jpeg_decompress_struct cinfo;
  JpegCheck err;
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_check_error_exit;
  err.pub.emit_message = jpeg_check_emit_message;
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::memcpy(message, err.message, JMSG_LENGTH_MAX);
    return false;
  }
  jpeg_mem_src(&cinfo, d, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  jpeg_read_coefficients(&cinfo);
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// True if the JPEG has an APP1 segment (EXIF) before its first scan: cv::imdecode may then
// rotate or flip the image, so such files take the OpenCV path.
bool jpeg_has_app1(const uint8_t *d, size_t n) {
  size_t i = 2;
  while (i + 4 <= n && d[i] == 0xFF) {
    uint8_t m = d[i + 1];
    if (m == 0xFF) {
      ++i;
      continue;
    }
    if (m == 0xDA || m == 0xD9) return false;
    if (jpeg_standalone(m)) {
      i += 2;
      continue;
    }
    if (m == 0xE1) return true;
    i += 2 + be16(d + i + 2);
  }
  return false;
}

// What our JPEG and PNG decoders return; kUseOpenCV: a JPEG that cv::imdecode decodes instead.
enum class DecodeStatus { kOk, kCorrupt, kOutOfMemory, kUseOpenCV };
// Room for a library's message (libjpeg's own limit, 200, is enough for libpng's too).
constexpr size_t kDecodeMessageLength = JMSG_LENGTH_MAX;

// Decodes a JPEG whose 1 or 3 components libjpeg converts itself (grayscale, YCbCr, RGB) straight
// into `bgr` (height rows of width * 3 bytes, `step` apart), with libjpeg's corrupt-data warnings
// as errors. The settings are OpenCV's JpegDecoder's (scale 1, default IDCT and upsampling,
// output in B, G, R order), so the pixels are those of cv::imdecode(IMREAD_COLOR) -- the unit
// tests compare both on every image of the study. CMYK/YCCK images, whose conversion OpenCV
// does itself, return kUseOpenCV before any decoding. C-style for setjmp, as above.
DecodeStatus jpeg_decode_bgr(const uint8_t *d, size_t n, uint8_t *bgr, size_t step, int64_t width,
                             int64_t height, char *message) {
  jpeg_decompress_struct cinfo;
  JpegCheck err;
  err.message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_check_error_exit;
  err.pub.emit_message = jpeg_check_emit_message;
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::memcpy(message, err.message, JMSG_LENGTH_MAX);
    return err.pub.msg_code == JERR_OUT_OF_MEMORY ? DecodeStatus::kOutOfMemory
                                                  : DecodeStatus::kCorrupt;
  }
  jpeg_mem_src(&cinfo, d, static_cast<unsigned long>(n));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components != 1 && cinfo.num_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    return DecodeStatus::kUseOpenCV;
  }
  cinfo.out_color_space = JCS_EXT_BGR;
  cinfo.out_color_components = 3;
  jpeg_start_decompress(&cinfo);
  if (int64_t(cinfo.output_width) != width || int64_t(cinfo.output_height) != height ||
      cinfo.output_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(message, JMSG_LENGTH_MAX, "header and data disagree");
    return DecodeStatus::kCorrupt;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = bgr + step * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return DecodeStatus::kOk;
}

// PNG through libpng with our own callbacks. libpng's default handlers print every error and
// warning ("libpng error: bad adaptive filter value") on stderr, which in a backend is the server
// log, written around its line prefix and log_min_messages -- any role could fill the log with
// bad images. Here an error's text is kept for our Error, and warnings (an unknown chunk, a
// questionable colour profile) are dropped, as cv::imdecode's result ignores them too.
struct PngSource {
  const uint8_t *data;
  size_t size;
  size_t pos;
  char message[kDecodeMessageLength];
};

void png_read_bytes(png_structp png, png_bytep out, size_t len) {
  auto *src = static_cast<PngSource *>(png_get_io_ptr(png));
  if (len > src->size - src->pos) png_error(png, "the data ends inside the image");
  std::memcpy(out, src->data + src->pos, len);
  src->pos += len;
}

[[noreturn]] void png_keep_error(png_structp png, png_const_charp msg) {
  auto *src = static_cast<PngSource *>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", msg);
  png_longjmp(png, 1);
}

void png_drop_warning(png_structp, png_const_charp) {}

// Decodes a PNG into `bgr` (height rows of width * 3 bytes, `step` apart) with the transforms
// OpenCV's PngDecoder asks for with IMREAD_COLOR -- 16 bits stripped to 8, alpha stripped, a
// palette expanded, gray of 1, 2, 4 bits expanded and replicated, RGB swapped to BGR, interlaced
// passes combined -- so the pixels are cv::imdecode's (the unit tests compare both). C-style for
// setjmp: no C++ object lives in this frame.
DecodeStatus png_decode_bgr(const uint8_t *d, size_t n, uint8_t *bgr, size_t step, int64_t width,
                            int64_t height, char *message) {
  PngSource src{d, n, 0, {0}};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_keep_error, png_drop_warning);
  if (png == nullptr) return DecodeStatus::kOutOfMemory;
  png_infop info = png_create_info_struct(png);
  png_infop end = png_create_info_struct(png);
  if (info == nullptr || end == nullptr) {
    png_destroy_read_struct(&png, &info, &end);
    return DecodeStatus::kOutOfMemory;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, &end);
    std::memcpy(message, src.message, kDecodeMessageLength);
    return std::strstr(message, "ut of memory") ? DecodeStatus::kOutOfMemory
                                                : DecodeStatus::kCorrupt;
  }
  png_set_read_fn(png, &src, png_read_bytes);
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, type = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &type, nullptr, nullptr, nullptr);
  if (int64_t(w) != width || int64_t(h) != height) png_error(png, "header and data disagree");
  if (depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((type & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (type & PNG_COLOR_MASK_COLOR)
    png_set_bgr(png);
  else
    png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != size_t(width) * 3) png_error(png, "unexpected row size");
  for (int pass = 0; pass < passes; ++pass)
    for (int64_t y = 0; y < height; ++y) png_read_row(png, bgr + step * size_t(y), nullptr);
  png_read_end(png, end);
  png_destroy_read_struct(&png, &info, &end);
  return DecodeStatus::kOk;
}

// PNG: IHDR first, every chunk inside the data, at least one IDAT, IEND reached. CRCs and the
// zlib stream are checked by libpng itself (a bad CRC of a critical chunk is an error there).
void png_structure(const uint8_t *d, size_t n) {
  size_t i = 8;
  bool idat = false;
  for (bool first = true;; first = false) {
    if (i + 12 > n) bad("truncated PNG image", "The data ends before the IEND chunk.");
    uint32_t len = be32(d + i);
    if (len > 0x7FFFFFFFu) bad("corrupt PNG image: bad chunk length");
    if (i + 12 + size_t(len) > n) bad("truncated PNG image", "The data ends inside a chunk.");
    const uint8_t *type = d + i + 4;
    for (int k = 0; k < 4; ++k) {
      uint8_t c = type[k];
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
        bad("corrupt PNG image: bad chunk type");
    }
    if (first && std::memcmp(type, "IHDR", 4) != 0) bad("corrupt PNG image: IHDR is not first");
    if (!std::memcmp(type, "IDAT", 4)) idat = true;
    if (!std::memcmp(type, "IEND", 4)) break;
    i += 12 + size_t(len);
  }
  if (!idat) bad("corrupt PNG image: no image data");
}

Header webp_header(const uint8_t *d, size_t n) {
  if (n < 30) bad("truncated WebP image");
  if (!std::memcmp(d + 12, "VP8 ", 4)) {
    if (d[23] != 0x9d || d[24] != 0x01 || d[25] != 0x2a) bad("corrupt WebP (VP8) image");
    return {Format::kWebp, le16(d + 26) & 0x3fff, le16(d + 28) & 0x3fff};
  }
  if (!std::memcmp(d + 12, "VP8L", 4)) {
    if (d[20] != 0x2f) bad("corrupt WebP (VP8L) image");
    uint32_t b = le32(d + 21);
    return {Format::kWebp, (b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1};
  }
  if (!std::memcmp(d + 12, "VP8X", 4)) {
    return {Format::kWebp, int64_t(le24(d + 24)) + 1, int64_t(le24(d + 27)) + 1};
  }
  bad("unsupported WebP image");
}

// WebP: the RIFF size fits the data and its chunks tile it, with one VP8/VP8L bitstream chunk.
void webp_structure(const uint8_t *d, size_t n) {
  size_t riff = size_t(le32(d + 4)) + 8;
  if (riff > n) bad("truncated WebP image", "The data is shorter than the RIFF size.");
  if (riff < 20) bad("corrupt WebP image: bad RIFF size");
  size_t i = 12;
  bool bitstream = false;
  while (i < riff) {
    if (i + 8 > riff) bad("corrupt WebP image: bad chunk header");
    size_t len = le32(d + i + 4);
    size_t end = i + 8 + len + (len & 1);
    if (end > riff) bad("truncated WebP image", "A chunk extends beyond the RIFF size.");
    if (!std::memcmp(d + i, "VP8 ", 4) || !std::memcmp(d + i, "VP8L", 4)) bitstream = true;
    i = end;
  }
  if (!bitstream) bad("corrupt WebP image: no image data");
}

// BMP: for uncompressed pixel arrays, the rows lie inside the data (RLE data is checked by
// OpenCV's decoder, which stops at the end of the buffer).
void bmp_structure(const uint8_t *d, size_t n, const Header &h) {
  if (n < 30) bad("truncated BMP image");
  size_t offset = le32(d + 10);
  uint32_t header_size = le32(d + 14);
  uint32_t bpp, compression = 0;
  if (header_size == 12) {
    bpp = le16(d + 24);
  } else {
    if (n < 34 || header_size < 16) bad("corrupt BMP image: bad header");
    bpp = le16(d + 28);
    compression = le32(d + 30);
  }
  if (bpp == 0 || bpp > 32) bad("corrupt BMP image: bad bit depth");
  if (offset < 14 + size_t(header_size) || offset > n)
    bad("truncated BMP image", "The pixel data offset lies beyond the data.");
  if (compression == 0 || compression == 3) {  // BI_RGB, BI_BITFIELDS
    uint64_t stride = ((uint64_t(h.width) * bpp + 31) / 32) * 4;
    if (offset + stride * uint64_t(h.height) > n)
      bad("truncated BMP image", "The data ends inside the pixel array.");
  }
}

[[noreturn]] void over_limit(const Header &h, const std::string &limit) {
  throw Error(sqlstate::kProgramLimitExceeded,
              std::string(format_name(h.format)) + " image of " + std::to_string(h.width) + "x" +
                  std::to_string(h.height) + " pixels exceeds " + limit,
              {}, "Raise lookalike.max_image_pixels to accept larger images.");
}

[[noreturn]] void out_of_memory(const Header &h) {
  throw Error(sqlstate::kOutOfMemory,
              std::string("out of memory decoding ") + format_name(h.format) + " image");
}

}  // namespace

const char *format_name(Format f) {
  switch (f) {
    case Format::kJpeg:
      return "JPEG";
    case Format::kPng:
      return "PNG";
    case Format::kWebp:
      return "WebP";
    case Format::kBmp:
      return "BMP";
    default:
      return "unknown";
  }
}

namespace {

Header header_fields(const uint8_t *d, size_t n) {
  if (n == 0) bad("empty image");
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return jpeg_header(d, n);
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && !std::memcmp(d, png_sig, 8)) {
    if (n < 24 || std::memcmp(d + 12, "IHDR", 4)) bad("truncated or corrupt PNG image");
    return {Format::kPng, be32(d + 16), be32(d + 20)};
  }
  if (n >= 12 && !std::memcmp(d, "RIFF", 4) && !std::memcmp(d + 8, "WEBP", 4))
    return webp_header(d, n);
  if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
    if (n < 26) bad("truncated BMP image");
    int32_t w = static_cast<int32_t>(le32(d + 18)), h = static_cast<int32_t>(le32(d + 22));
    if (le32(d + 14) == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
      w = static_cast<int32_t>(le16(d + 18));
      h = static_cast<int32_t>(le16(d + 20));
    }
    return {Format::kBmp, w < 0 ? -int64_t(w) : w, h < 0 ? -int64_t(h) : h};
  }
  bad("not a supported image (JPEG, PNG, WebP or BMP)");
}

}  // namespace

Header read_header(const uint8_t *d, size_t n) {
  Header h = header_fields(d, n);
  // No format has an image of zero width or height: a header that claims one is corrupt, for
  // image_info() as for the decoding functions.
  if (h.width <= 0 || h.height <= 0)
    bad(std::string("corrupt ") + format_name(h.format) + " image: zero width or height");
  return h;
}

void check_structure(const uint8_t *data, size_t len, const Header &h) {
  switch (h.format) {
    case Format::kJpeg:
      return jpeg_structure(data, len);
    case Format::kPng:
      return png_structure(data, len);
    case Format::kWebp:
      return webp_structure(data, len);
    case Format::kBmp:
      return bmp_structure(data, len, h);
    default:
      bad("not a supported image (JPEG, PNG, WebP or BMP)");
  }
}

void use_single_threaded_opencv() {
  static std::once_flag once;
  std::call_once(once, [] {
    cv::setNumThreads(0);
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  });
}

cv::Mat decode_bgr(const uint8_t *data, size_t len, int64_t max_pixels) {
  use_single_threaded_opencv();
  Header h = read_header(data, len);  // refuses zero width or height
  if (h.width > kMaxImageSide || h.height > kMaxImageSide)
    over_limit(h, "the largest side OpenCV decodes (" + std::to_string(kMaxImageSide) + ")");
  if (max_pixels > kMaxImagePixelsLimit) max_pixels = kMaxImagePixelsLimit;
  if (h.width * h.height > max_pixels)
    over_limit(h, "the limit of " + std::to_string(max_pixels) + " pixels");
  check_structure(data, len, h);
  if (h.format == Format::kJpeg) {
    char message[JMSG_LENGTH_MAX];
    if (!jpeg_has_app1(data, len)) {
      // One libjpeg pass decodes and checks (most JPEGs).
      cv::Mat img;
      try {
        img.create(static_cast<int>(h.height), static_cast<int>(h.width), CV_8UC3);
      } catch (const cv::Exception &) {
        out_of_memory(h);
      }
      DecodeStatus st =
          jpeg_decode_bgr(data, len, img.data, img.step[0], h.width, h.height, message);
      if (st == DecodeStatus::kOk) return img;
      if (st == DecodeStatus::kOutOfMemory) out_of_memory(h);
      if (st == DecodeStatus::kCorrupt) bad("corrupt JPEG image", message);
    }
    // EXIF (orientation) or CMYK: check the entropy-coded data, then let OpenCV decode.
    if (!jpeg_entropy_check(data, len, message)) bad("corrupt JPEG image", message);
  }
  if (h.format == Format::kPng) {
    char message[kDecodeMessageLength];
    cv::Mat img;
    try {
      img.create(static_cast<int>(h.height), static_cast<int>(h.width), CV_8UC3);
    } catch (const cv::Exception &) {
      out_of_memory(h);
    }
    DecodeStatus st = png_decode_bgr(data, len, img.data, img.step[0], h.width, h.height, message);
    if (st == DecodeStatus::kOutOfMemory) out_of_memory(h);
    if (st != DecodeStatus::kOk) bad("corrupt PNG image", message);
    return img;
  }
  // imdecode needs a Mat header over the bytes; it does not modify them.
  cv::Mat buf(1, static_cast<int>(len), CV_8UC1, const_cast<uint8_t *>(data));
  cv::Mat img;
  try {
    img = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception &e) {
    if (e.code == cv::Error::StsNoMem) out_of_memory(h);
    bad(std::string("could not decode ") + format_name(h.format) + " image", e.what());
  }
  if (img.empty()) bad(std::string("could not decode ") + format_name(h.format) + " image");
  // imdecode applies the EXIF orientation of a JPEG, which may swap width and height.
  bool same = img.cols == h.width && img.rows == h.height;
  bool swapped = img.cols == h.height && img.rows == h.width;
  if (!(same || (swapped && h.format == Format::kJpeg)) || img.type() != CV_8UC3)
    bad(std::string("corrupt ") + format_name(h.format) + " image: header and data disagree");
  return img;
}

}  // namespace lookalike::image
