// Image decoding for the feature functions. Pure C++ (OpenCV), no PostgreSQL.
#pragma once

#include <cstddef>
#include <cstdint>

#include <opencv2/core.hpp>

#include "common/constants.hpp"
#include "image/settings.hpp"

namespace lookalike::image {

enum class Format { kUnknown, kJpeg, kPng, kWebp, kBmp };

struct Header {
  Format format = Format::kUnknown;
  int64_t width = 0;
  int64_t height = 0;
};

// OpenCV's own decoder limits (imgcodecs: OPENCV_IO_MAX_IMAGE_WIDTH/HEIGHT/PIXELS defaults). Our
// checks run first, so an image beyond them gets our error (54000), not an OpenCV assertion.
// kMaxImagePixelsLimit (image/settings.hpp) is OPENCV_IO_MAX_IMAGE_PIXELS.
inline constexpr int64_t kMaxImageSide = int64_t(1) << 20;

// Reads the format and the pixel dimensions from the first bytes of an encoded image, without
// decoding it. Throws lookalike::Error (22P03) for empty, non-image or truncated headers, and
// for headers that claim a zero width or height.
Header read_header(const uint8_t *data, size_t len);

// Checks the container structure of the whole encoded image without decoding pixels: JPEG marker
// segments and entropy-coded data up to the EOI marker, PNG chunks up to IEND, the WebP RIFF
// size and chunks, the BMP pixel array. Throws lookalike::Error (22P03) for truncated or
// structurally corrupt data -- the cases where libjpeg/libpng would otherwise return a partly
// grey image with only a warning.
void check_structure(const uint8_t *data, size_t len, const Header &h);

const char *format_name(Format f);

// Decodes JPEG, PNG, WebP or BMP bytes into an 8-bit, 3-channel image in OpenCV's BGR order
// (JPEG: libjpeg directly, with corrupt-data warnings as errors, or cv::imdecode for EXIF/CMYK
// files; PNG: libpng directly, whose messages come back in our error instead of going to
// stderr; WebP, BMP: cv::imdecode), pixel for pixel what cv::imdecode gives:
// grayscale is replicated to three channels, alpha dropped and the EXIF orientation applied
// (exactly what cv::imread(IMREAD_COLOR) gives). Refuses, before decoding, an image of more than
// max_pixels pixels or a side over kMaxImageSide (54000) -- the decompression-bomb guard. Throws
// lookalike::Error (22P03) for empty, truncated, corrupt or unsupported data, 53200 when OpenCV
// runs out of memory. The first call also makes OpenCV single-threaded in this process (see
// use_single_threaded_opencv).
cv::Mat decode_bgr(const uint8_t *data, size_t len, int64_t max_pixels);

// Makes OpenCV run its functions sequentially in this process (cv::setNumThreads(0)) and
// silences its log output (errors are reported through lookalike::Error). Inside PostgreSQL each
// backend is one process: parallelism comes from parallel query, and OpenCV's own thread pool in
// every backend would oversubscribe the cores. Idempotent and cheap after the first call.
void use_single_threaded_opencv();

}  // namespace lookalike::image
