// Foreground colour histogram. See foreground.hpp.
#include "image/foreground.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <opencv2/imgproc.hpp>

#include "common/errors.hpp"

namespace lookalike::image {

cv::Mat foreground_mask(const cv::Mat &bgr, int white_tolerance) {
  CV_Assert(bgr.type() == CV_8UC3);
  const int lo = 255 - white_tolerance;
  cv::Mat near_white(bgr.size(), CV_8U);
  for (int y = 0; y < bgr.rows; ++y) {
    const cv::Vec3b *p = bgr.ptr<cv::Vec3b>(y);
    uint8_t *q = near_white.ptr<uint8_t>(y);
    for (int x = 0; x < bgr.cols; ++x)
      q[x] = (p[x][0] >= lo && p[x][1] >= lo && p[x][2] >= lo) ? 1 : 0;
  }
  cv::Mat labels;
  const int n = cv::connectedComponents(near_white, labels, 4, CV_32S);
  std::vector<uint8_t> touches(n, 0);
  for (int x = 0; x < bgr.cols; ++x) {
    touches[labels.at<int>(0, x)] = 1;
    touches[labels.at<int>(bgr.rows - 1, x)] = 1;
  }
  for (int y = 0; y < bgr.rows; ++y) {
    touches[labels.at<int>(y, 0)] = 1;
    touches[labels.at<int>(y, bgr.cols - 1)] = 1;
  }
  cv::Mat mask(bgr.size(), CV_8U);
  for (int y = 0; y < bgr.rows; ++y) {
    const int *l = labels.ptr<int>(y);
    const uint8_t *w = near_white.ptr<uint8_t>(y);
    uint8_t *m = mask.ptr<uint8_t>(y);
    for (int x = 0; x < bgr.cols; ++x) m[x] = (w[x] && touches[l[x]]) ? 0 : 255;
  }
  return mask;
}

std::vector<float> foreground_color_histogram(const cv::Mat &bgr, const ForegroundOptions &opt) {
  if (opt.hue_bins < 1 || opt.hue_bins > 64 || opt.grey_bins < 1 || opt.grey_bins > 64)
    throw Error(sqlstate::kInvalidParameterValue, "bins must be between 1 and 64");
  if (opt.white_tolerance < 0 || opt.white_tolerance > 255)
    throw Error(sqlstate::kInvalidParameterValue, "white_tolerance must be between 0 and 255");
  if (bgr.empty() || bgr.type() != CV_8UC3)
    throw Error(sqlstate::kInvalidParameterValue, "expected a non-empty 8-bit colour image");
  cv::Mat mask = foreground_mask(bgr, opt.white_tolerance);
  const bool use_all = cv::countNonZero(mask) < 10;
  cv::Mat hsv;
  cv::cvtColor(bgr, hsv, cv::COLOR_BGR2HSV_FULL);  // H, S, V all in [0, 255]
  const int sb = 3, vb = 3;
  const int chroma_bins = opt.hue_bins * sb * vb;
  std::vector<double> h(chroma_bins + opt.grey_bins, 0.0);
  double total = 0;
  for (int y = 0; y < hsv.rows; ++y) {
    const cv::Vec3b *p = hsv.ptr<cv::Vec3b>(y);
    const uint8_t *m = mask.ptr<uint8_t>(y);
    for (int x = 0; x < hsv.cols; ++x) {
      if (!use_all && !m[x]) continue;
      const float hh = p[x][0] / 256.0f, s = p[x][1] / 256.0f, v = p[x][2] / 256.0f;
      if (s * v >= 0.12f) {
        const int hi = static_cast<int>(hh * opt.hue_bins) % opt.hue_bins;
        const int si = std::min(static_cast<int>(s * sb), sb - 1);
        const int vi = std::min(static_cast<int>(v * vb), vb - 1);
        h[(hi * sb + si) * vb + vi] += 1;
      } else {
        h[chroma_bins + std::min(static_cast<int>(v * opt.grey_bins), opt.grey_bins - 1)] += 1;
      }
      total += 1;
    }
  }
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = static_cast<float>(std::sqrt(h[i] / total));
  return out;
}

}  // namespace lookalike::image
