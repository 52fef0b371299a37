// The colour histogram feature (the study's baseline). Pure C++ (OpenCV), no PostgreSQL.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

namespace lookalike::image {

// Side of the square the image is resized to before counting (the study's 224x224).
inline constexpr int kHistogramImageSide = 224;

// Throws lookalike::Error (22023) unless 1 <= bins <= kMaxHistogramBins and bins^3 <= kMaxDims.
void check_histogram_bins(int bins);

// Number of components of a histogram with `bins` bins per channel: bins^3.
inline int histogram_dims(int bins) { return bins * bins * bins; }

// The study's colour histogram of a decoded 8-bit BGR image (decode_bgr()), written to
// out[0 .. bins^3): cv::resize to 224x224 with INTER_LINEAR, cv::calcHist over channels
// {0,1,2} with `bins` uniform bins per channel over [0,256), each count divided (in float32) by
// the sum of the counts. Component order is calcHist's on a BGR image, flattened row-major:
//   index = (b_bin * bins + g_bin) * bins + r_bin,   x_bin = floor(x * bins / 256)
// -- the same vector as the reference's cv2.calcHist(...).flatten() / sum.
void color_histogram(const cv::Mat &bgr, int bins, float *out);

// The counting step alone, on an image of any size: the normalised 3-D histogram of an 8-bit BGR
// image, bit for bit what cv::calcHist (uniform [0,256) ranges) divided by its float32 sum gives,
// about 4x faster (unit tests compare both). Needs fewer than 2^24 pixels.
void count_colors(const cv::Mat &bgr, int bins, float *out);

}  // namespace lookalike::image
