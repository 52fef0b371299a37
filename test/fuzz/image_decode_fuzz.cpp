// libFuzzer target: image decoding (src/image/decode.cpp: decode_bgr -- our JPEG path through
// libjpeg, our PNG path through libpng, OpenCV's imdecode for WebP, BMP and EXIF JPEGs) and the
// colour histogram of what it decodes. Properties: bad data raises 22P03, 54000 or 53200 and
// nothing else (no cv::Exception or other exception escapes); a decoded image is 8-bit BGR with the
// header's sides (or swapped by a JPEG's EXIF orientation); its histogram is finite, non-negative
// and sums to 1.
#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz_common.hpp"
#include "image/decode.hpp"
#include "image/histogram.hpp"

using namespace lookalike;

// Small enough that one input decodes in well under the per-input timeout under ASan.
static constexpr int64_t kFuzzMaxPixels = int64_t(1) << 22;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cv::Mat img;
  try {
    img = image::decode_bgr(data, size, kFuzzMaxPixels);
  } catch (const Error &e) {
    fuzz::expect_sqlstate(e, {"22P03", "54000", "53200"});
    return 0;
  }
  if (img.empty() || img.type() != CV_8UC3) fuzz::fail("decoded image is not 8-bit BGR");
  image::Header h = image::read_header(data, size);
  bool same = img.cols == h.width && img.rows == h.height;
  bool swapped = img.cols == h.height && img.rows == h.width;
  if (!same && !(swapped && h.format == image::Format::kJpeg))
    fuzz::fail("decoded sides differ from the header");
  const int bins = 4;
  std::vector<float> hist(image::histogram_dims(bins));
  image::color_histogram(img, bins, hist.data());
  double sum = 0;
  for (float v : hist) {
    if (!std::isfinite(v) || v < 0) fuzz::fail("histogram component not finite or negative");
    sum += v;
  }
  if (std::fabs(sum - 1.0) > 1e-3) fuzz::fail("histogram does not sum to 1");
  fuzz::accepted();
  return 0;
}
