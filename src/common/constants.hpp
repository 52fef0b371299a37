// Constants shared by the whole extension: limits, defaults and names. Pure C++ (no PostgreSQL).
#pragma once

#include <cstdint>

namespace lookalike {

inline constexpr const char *kVersion = "0.2.0";

// The embedding type.
inline constexpr int kMaxDims = 16000;  // same bound as pgvector's vector type

// Image functions (issue #3).
inline constexpr int kDefaultHistogramBins = 8;
inline constexpr int kMaxHistogramBins = 32;  // 32^3 = 32768 > kMaxDims: checked at run time
inline constexpr int64_t kDefaultMaxImagePixels = 50'000'000;
// Upper bound of lookalike.max_image_pixels: OpenCV's own decoder limit
// (OPENCV_IO_MAX_IMAGE_PIXELS).
inline constexpr int64_t kMaxImagePixelsLimit = int64_t(1) << 30;

// Model runtime (issue #3).
// 16 images per forward pass: near the throughput of 32 on a CPU, half the cancel latency.
inline constexpr int kDefaultBatchSize = 4;  // measured: see docs/model.md, "Batch size"
inline constexpr int kMaxBatchSize = 1024;
inline constexpr int kDefaultModelThreads = 1;  // per backend: never oversubscribes the cores
inline constexpr int kMaxModelThreads = 256;
inline constexpr int kDefaultProgressInterval = 10;  // seconds

}  // namespace lookalike
