#include "image/histogram.hpp"

#include <string>

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

void color_histogram(const cv::Mat &bgr, int bins, float *out) {
  check_histogram_bins(bins);
  if (bgr.type() != CV_8UC3 || bgr.empty())
    throw Error(sqlstate::kInternalError, "color_histogram needs a decoded 8-bit BGR image");
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(kHistogramImageSide, kHistogramImageSide), 0, 0,
             cv::INTER_LINEAR);
  const int channels[] = {0, 1, 2};
  const int sizes[] = {bins, bins, bins};
  const float range[] = {0.0f, 256.0f};
  const float *ranges[] = {range, range, range};
  // calcHist writes straight into `out`: a Mat of the right shape and type over it is kept.
  cv::Mat hist(3, sizes, CV_32F, out);
  cv::calcHist(&resized, 1, channels, cv::Mat(), hist, 3, sizes, ranges, true, false);
  if (hist.data != reinterpret_cast<uchar *>(out))
    throw Error(sqlstate::kInternalError, "cv::calcHist reallocated its output");
  const int n = histogram_dims(bins);
  // Counts are integers below 2^24, so the float sum is exact in any order; the division is in
  // float32 like the reference's numpy `h / h.sum()`.
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += out[i];
  for (int i = 0; i < n; ++i) out[i] = out[i] / sum;
}

}  // namespace lookalike::image
