// Unit tests of the foreground colour histogram (src/image/foreground.cpp) on synthetic images
// whose histogram is known exactly.
#include <gtest/gtest.h>

#include <cmath>

#include <opencv2/core.hpp>

#include "common/errors.hpp"
#include "image/foreground.hpp"

using lookalike::image::foreground_color_histogram;
using lookalike::image::foreground_mask;
using lookalike::image::ForegroundOptions;

namespace {

// 20x20 white frame, an 8x8 red square at (6,6), with a 2x2 white patch inside it.
cv::Mat product() {
  cv::Mat img(20, 20, CV_8UC3, cv::Scalar(255, 255, 255));
  img(cv::Rect(6, 6, 8, 8)).setTo(cv::Scalar(0, 0, 255));  // BGR red
  img(cv::Rect(9, 9, 2, 2)).setTo(cv::Scalar(250, 250, 250));
  return img;
}

}  // namespace

TEST(Foreground, MasksOnlyWhiteThatTouchesTheBorder) {
  cv::Mat m = foreground_mask(product(), 20);
  EXPECT_EQ(cv::countNonZero(m), 64);  // the square, including its white interior
  EXPECT_EQ(m.at<uint8_t>(0, 0), 0);
  EXPECT_EQ(m.at<uint8_t>(9, 9), 255);
  EXPECT_EQ(m.at<uint8_t>(6, 6), 255);
}

TEST(Foreground, HistogramOfTheProductPixels) {
  ForegroundOptions opt;
  auto h = foreground_color_histogram(product(), opt);
  ASSERT_EQ(h.size(), 12u * 9 + 4);
  // red: hue bin 0, saturation bin 2, value bin 2 -> index 8; the white patch: top grey bin.
  EXPECT_FLOAT_EQ(h[8], static_cast<float>(std::sqrt(60.0 / 64)));
  EXPECT_FLOAT_EQ(h[111], static_cast<float>(std::sqrt(4.0 / 64)));
  double norm = 0;
  for (float x : h) norm += double(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-6);
  // the background does not count: the same product on a bigger frame gives the same vector
  cv::Mat big(60, 40, CV_8UC3, cv::Scalar(255, 255, 255));
  product()(cv::Rect(1, 1, 18, 18)).copyTo(big(cv::Rect(10, 20, 18, 18)));
  EXPECT_EQ(foreground_color_histogram(big, opt), h);
}

TEST(Foreground, BlankImageFallsBackToTheWholeFrame) {
  cv::Mat white(10, 10, CV_8UC3, cv::Scalar(255, 255, 255));
  auto h = foreground_color_histogram(white, ForegroundOptions{});
  EXPECT_FLOAT_EQ(h[111], 1.0f);
}

TEST(Foreground, HueBinsAndErrors) {
  ForegroundOptions opt;
  opt.hue_bins = 6;
  EXPECT_EQ(foreground_color_histogram(product(), opt).size(), 6u * 9 + 4);
  opt.hue_bins = 0;
  EXPECT_THROW(foreground_color_histogram(product(), opt), lookalike::Error);
  opt.hue_bins = 12;
  opt.white_tolerance = 256;
  EXPECT_THROW(foreground_color_histogram(product(), opt), lookalike::Error);
  EXPECT_THROW(foreground_color_histogram(cv::Mat(), ForegroundOptions{}), lookalike::Error);
}
