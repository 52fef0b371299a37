// A colour descriptor of a product photo's own pixels: the near-white background that touches
// the frame is masked out, the remaining pixels go into an HSV histogram. Pure C++ (OpenCV).
#pragma once

#include <vector>

#include <opencv2/core.hpp>

namespace lookalike::image {

struct ForegroundOptions {
  int hue_bins = 12;         // chromatic pixels: hue_bins x 3 saturation x 3 value bins
  int grey_bins = 4;         // achromatic pixels (saturation x value < 0.12): value bins
  int white_tolerance = 20;  // background: every channel >= 255 - white_tolerance ...
                             // ... and 4-connected to the frame's border
};

// Mask (CV_8U, 255 = foreground) of an 8-bit BGR image: pixels that are not part of a
// near-white region touching the border.
cv::Mat foreground_mask(const cv::Mat &bgr, int white_tolerance);

// The descriptor: hue_bins*9 + grey_bins values, the square roots of the foreground's
// normalised histogram (so it has unit L2 norm and the cosine of two descriptors is their
// Bhattacharyya coefficient). If fewer than 10 pixels are foreground, the whole frame is used.
// Throws lookalike::Error (22023) for bins out of range [1, 64] or tolerance out of [0, 255].
std::vector<float> foreground_color_histogram(const cv::Mat &bgr, const ForegroundOptions &opt);

}  // namespace lookalike::image
