// Image decoding for the feature functions. Pure C++ (OpenCV), no PostgreSQL.
#pragma once

#include <cstddef>
#include <cstdint>

#include <opencv2/core.hpp>

namespace lookalike::image {

enum class Format { kUnknown, kJpeg, kPng, kWebp, kBmp };

struct Header {
  Format format = Format::kUnknown;
  int64_t width = 0;
  int64_t height = 0;
};

// Reads the format and the pixel dimensions from the first bytes of an encoded image, without
// decoding it. Throws lookalike::Error (22P03) for empty, non-image or truncated headers.
Header read_header(const uint8_t *data, size_t len);

const char *format_name(Format f);

// Decodes JPEG, PNG, WebP or BMP bytes into an 8-bit, 3-channel image in OpenCV's BGR order:
// grayscale is replicated to three channels and alpha dropped (what cv::imread(IMREAD_COLOR)
// gives). Refuses, before decoding, an image of more than max_pixels pixels (54000) -- the
// decompression-bomb guard. Throws lookalike::Error (22P03) for corrupt or truncated data.
cv::Mat decode_bgr(const uint8_t *data, size_t len, int64_t max_pixels);

}  // namespace lookalike::image
