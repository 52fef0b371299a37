#include "image/decode.hpp"

#include <cstring>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "common/errors.hpp"

namespace lookalike::image {
namespace {

[[noreturn]] void bad(const std::string &msg) {
  throw Error(sqlstate::kInvalidBinaryRepresentation, msg);
}

uint32_t be16(const uint8_t *p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t *p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t *p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
uint32_t le24(const uint8_t *p) { return le16(p) | (uint32_t(p[2]) << 16); }
uint32_t le32(const uint8_t *p) { return le16(p) | (le16(p + 2) << 16); }

Header jpeg_header(const uint8_t *d, size_t n) {
  // Walk the marker segments up to the first start-of-frame (SOF0..SOF15 except DHT/JPG/DAC).
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
    bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (i + 9 > n) break;
      return {Format::kJpeg, be16(d + i + 7), be16(d + i + 5)};
    }
    i += 2 + seglen;
  }
  bad("truncated or corrupt JPEG image: no frame header");
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

Header read_header(const uint8_t *d, size_t n) {
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

cv::Mat decode_bgr(const uint8_t *data, size_t len, int64_t max_pixels) {
  Header h = read_header(data, len);
  if (h.width <= 0 || h.height <= 0)
    bad(std::string("corrupt ") + format_name(h.format) + " image: zero width or height");
  if (h.width * h.height > max_pixels) {
    throw Error(sqlstate::kProgramLimitExceeded,
                std::string(format_name(h.format)) + " image of " + std::to_string(h.width) + "x" +
                    std::to_string(h.height) + " pixels exceeds the limit of " +
                    std::to_string(max_pixels) + " pixels",
                {}, "Raise lookalike.max_image_pixels to accept larger images.");
  }
  // imdecode needs a Mat header over the bytes; it does not modify them.
  cv::Mat buf(1, static_cast<int>(len), CV_8UC1, const_cast<uint8_t *>(data));
  cv::Mat img;
  try {
    img = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception &e) {
    bad(std::string("could not decode ") + format_name(h.format) + " image: " + e.what());
  }
  if (img.empty()) bad(std::string("could not decode ") + format_name(h.format) + " image");
  if (img.cols != h.width || img.rows != h.height)
    bad(std::string("corrupt ") + format_name(h.format) + " image: header and data disagree");
  return img;
}

}  // namespace lookalike::image
