#include "image/histogram.hpp"

#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "common/constants.hpp"
#include "common/errors.hpp"

namespace lookalike::image {

void check_histogram_bins(int bins) {
  if (bins < 1 || bins > kMaxHistogramBins || histogram_dims(bins) > kMaxDims) {
    int max_bins = 1;
    while (max_bins < kMaxHistogramBins && histogram_dims(max_bins + 1) <= kMaxDims) ++max_bins;
    throw Error(
        sqlstate::kInvalidParameterValue,
        "bins must be between 1 and " + std::to_string(max_bins) + ", got " + std::to_string(bins),
        "A histogram has bins^3 dimensions, at most " + std::to_string(kMaxDims) + ".");
  }
}

void count_colors(const cv::Mat &bgr, int bins, float *out) {
  check_histogram_bins(bins);
  if (bgr.type() != CV_8UC3)
    throw Error(sqlstate::kInternalError, "count_colors needs an 8-bit BGR image");
  const int n = histogram_dims(bins);
  // Bin of an 8-bit value: floor(v * bins / 256), what calcHist's lookup table holds for uniform
  // ranges [0,256) (bins/256 and v*bins/256 are exact in double, so its cvFloor agrees).
  uint32_t tb[256], tg[256], tr[256];
  for (int v = 0; v < 256; ++v) {
    uint32_t bin = static_cast<uint32_t>((v * bins) >> 8);
    tb[v] = bin * bins * bins;
    tg[v] = bin * bins;
    tr[v] = bin;
  }
  // Four interleaved sub-histograms: neighbouring pixels of one colour would otherwise increment
  // the same counter back to back and serialise on the store-to-load latency.
  constexpr int kWays = 4;
  std::vector<uint32_t> counts(size_t(kWays) * n, 0);
  uint32_t *c0 = counts.data(), *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t *p = bgr.ptr<uint8_t>(y);
    const int cols = bgr.cols;
    int x = 0;
    for (; x + kWays <= cols; x += kWays, p += 3 * kWays) {
      ++c0[tb[p[0]] + tg[p[1]] + tr[p[2]]];
      ++c1[tb[p[3]] + tg[p[4]] + tr[p[5]]];
      ++c2[tb[p[6]] + tg[p[7]] + tr[p[8]]];
      ++c3[tb[p[9]] + tg[p[10]] + tr[p[11]]];
    }
    for (; x < cols; ++x, p += 3) ++c0[tb[p[0]] + tg[p[1]] + tr[p[2]]];
  }
  uint64_t total = 0;
  for (int i = 0; i < n; ++i) {
    uint32_t c = c0[i] + c1[i] + c2[i] + c3[i];
    total += c;
    out[i] = static_cast<float>(c);
  }
  // The reference divides calcHist's float32 counts by their float32 sum (numpy h / h.sum()).
  // Counts and their sum are integers below 2^24 here, hence exact in float32 whatever the order
  // of summation; the division is one correctly rounded float32 operation, as in numpy.
  const float sum = static_cast<float>(total);
  if (total == 0 || total >= (uint64_t(1) << 24))
    throw Error(sqlstate::kInternalError, "colour histogram of an empty or oversized image");
  for (int i = 0; i < n; ++i) out[i] = out[i] / sum;
}

void color_histogram(const cv::Mat &bgr, int bins, float *out) {
  check_histogram_bins(bins);
  if (bgr.type() != CV_8UC3 || bgr.empty())
    throw Error(sqlstate::kInternalError, "color_histogram needs a decoded 8-bit BGR image");
  // The 224x224 buffer is kept between calls (one per thread): cv::resize reuses it, which saves
  // a 150 kB allocation, its page faults and its release per image.
  thread_local cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(kHistogramImageSide, kHistogramImageSide), 0, 0,
             cv::INTER_LINEAR);
  count_colors(resized, bins, out);
}

}  // namespace lookalike::image
