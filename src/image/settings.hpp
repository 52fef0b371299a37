// The image functions' settings: names, defaults and limits (pure C++; defined in
// settings_pg.cpp, read by lookalike_image.so and lookalike_model.so).
#pragma once

#include <cstdint>

namespace lookalike::image {

// lookalike.max_image_pixels: the decompression-bomb guard of every function that decodes an
// image. Its upper bound is OpenCV's own decoder limit (OPENCV_IO_MAX_IMAGE_PIXELS).
inline constexpr const char *kMaxImagePixelsName = "lookalike.max_image_pixels";
inline constexpr int64_t kDefaultMaxImagePixels = 50'000'000;
inline constexpr int64_t kMaxImagePixelsLimit = int64_t(1) << 30;

}  // namespace lookalike::image
