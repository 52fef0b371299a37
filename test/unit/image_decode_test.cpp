// Image decoding (src/image/decode.cpp) and the colour histogram (src/image/histogram.cpp).
// Images are encoded here with cv::imencode; real ones come from LOOKALIKE_SHARED_DIR.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "image/settings.hpp"
#include "common/errors.hpp"
#include "image/decode.hpp"
#include "image/histogram.hpp"

using lookalike::Error;
namespace image = lookalike::image;

namespace {

constexpr int64_t kLimit = 50'000'000;
using Bytes = std::vector<uint8_t>;

// A colourful test picture: gradients plus seeded noise, so that no codec compresses it away.
cv::Mat picture(int w, int h, int channels = 3, unsigned seed = 1) {
  cv::Mat img(h, w, CV_8UC(channels));
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        img.ptr<uint8_t>(y)[x * channels + c] =
            static_cast<uint8_t>((x * 255 / w + y * 97 / h + c * 60 + rng() % 24) & 0xFF);
  return img;
}

Bytes encode(const std::string &ext, const cv::Mat &img, std::vector<int> params = {}) {
  Bytes out;
  EXPECT_TRUE(cv::imencode(ext, img, out, params)) << ext;
  return out;
}

cv::Mat decode(const Bytes &b, int64_t limit = kLimit) {
  return image::decode_bgr(b.data(), b.size(), limit);
}

// The SQLSTATE decode() raises, or "" if it succeeds.
std::string state_of(const Bytes &b, int64_t limit = kLimit) {
  try {
    decode(b, limit);
  } catch (const Error &e) {
    return e.sqlstate();
  }
  return "";
}

Bytes read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string shared_image(const std::string &id) {
  return std::string(LOOKALIKE_SHARED_DIR) + "/data/fashion/images/" + id + ".jpg";
}

bool same_pixels(const cv::Mat &a, const cv::Mat &b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

struct Encoded {
  std::string name;
  Bytes bytes;
};

std::vector<Encoded> all_formats(const cv::Mat &img) {
  return {{"JPEG", encode(".jpg", img)},
          {"progressive JPEG", encode(".jpg", img, {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
          {"PNG", encode(".png", img)},
          {"WebP lossy", encode(".webp", img, {cv::IMWRITE_WEBP_QUALITY, 80})},
          {"WebP lossless", encode(".webp", img, {cv::IMWRITE_WEBP_QUALITY, 101})},
          {"BMP", encode(".bmp", img)}};
}

}  // namespace

TEST(ImageDecode, EveryFormatDecodesToBgr8) {
  cv::Mat src = picture(64, 48);
  for (const auto &e : all_formats(src)) {
    cv::Mat img = decode(e.bytes);
    EXPECT_EQ(img.cols, 64) << e.name;
    EXPECT_EQ(img.rows, 48) << e.name;
    EXPECT_EQ(img.type(), CV_8UC3) << e.name;
    // Exactly what cv::imdecode(IMREAD_COLOR) gives: the reference reads images that way.
    EXPECT_TRUE(same_pixels(img, cv::imdecode(e.bytes, cv::IMREAD_COLOR))) << e.name;
  }
  EXPECT_TRUE(same_pixels(decode(encode(".png", src)), src));
  EXPECT_TRUE(same_pixels(decode(encode(".bmp", src)), src));
  EXPECT_TRUE(same_pixels(decode(encode(".webp", src, {cv::IMWRITE_WEBP_QUALITY, 101})), src));
}

TEST(ImageDecode, HeaderGivesFormatAndSize) {
  cv::Mat src = picture(37, 21);
  struct {
    const char *ext;
    image::Format f;
  } cases[] = {{".jpg", image::Format::kJpeg},
               {".png", image::Format::kPng},
               {".webp", image::Format::kWebp},
               {".bmp", image::Format::kBmp}};
  for (const auto &c : cases) {
    Bytes b = encode(c.ext, src);
    image::Header h = image::read_header(b.data(), b.size());
    EXPECT_EQ(h.format, c.f) << c.ext;
    EXPECT_EQ(h.width, 37) << c.ext;
    EXPECT_EQ(h.height, 21) << c.ext;
  }
  Bytes lossless = encode(".webp", src, {cv::IMWRITE_WEBP_QUALITY, 101});
  image::Header h = image::read_header(lossless.data(), lossless.size());
  EXPECT_EQ(h.width, 37);
  EXPECT_EQ(h.height, 21);
}

// A header claiming a zero width or height is refused as corrupt (22P03) by image_info() too, as
// decoding refuses it: image_info() once answered 0 for such a header.
TEST(ImageDecode, HeaderClaimingZeroSizeIs22P03) {
  cv::Mat src = picture(37, 21);
  for (const char *ext : {".png", ".bmp"}) {
    Bytes b = encode(ext, src);
    // width field: PNG IHDR at byte 16 (big-endian), BMP at byte 18 (little-endian)
    const size_t at = std::string(ext) == ".png" ? 16 : 18;
    for (size_t k = 0; k < 4; ++k) b[at + k] = 0;
    try {
      image::read_header(b.data(), b.size());
      ADD_FAILURE() << ext << ": zero width accepted";
    } catch (const lookalike::Error &e) {
      EXPECT_STREQ(e.sqlstate(), "22P03") << ext;
    }
  }
}

TEST(ImageDecode, GrayscaleIsReplicatedToThreeChannels) {
  cv::Mat gray = picture(40, 30, 1);
  for (const char *ext : {".jpg", ".png", ".bmp"}) {
    cv::Mat img = decode(encode(ext, gray));
    ASSERT_EQ(img.type(), CV_8UC3) << ext;
    std::vector<cv::Mat> ch;
    cv::split(img, ch);
    EXPECT_EQ(cv::norm(ch[0], ch[1], cv::NORM_INF), 0) << ext;
    EXPECT_EQ(cv::norm(ch[0], ch[2], cv::NORM_INF), 0) << ext;
    if (std::string(ext) != ".jpg") {
      EXPECT_EQ(cv::norm(ch[0], gray, cv::NORM_INF), 0) << ext;
    }
  }
}

TEST(ImageDecode, AlphaIsDropped) {
  cv::Mat bgra = picture(33, 17, 4);
  cv::Mat bgr;
  cv::cvtColor(bgra, bgr, cv::COLOR_BGRA2BGR);
  EXPECT_TRUE(same_pixels(decode(encode(".png", bgra)), bgr));
  // Lossless WebP may rewrite the colour of fully transparent pixels: compare with imdecode.
  Bytes webp = encode(".webp", bgra, {cv::IMWRITE_WEBP_QUALITY, 101});
  EXPECT_TRUE(same_pixels(decode(webp), cv::imdecode(webp, cv::IMREAD_COLOR)));
  EXPECT_EQ(decode(webp).type(), CV_8UC3);
}

TEST(ImageDecode, SixteenBitPngIsScaledTo8Bit) {
  cv::Mat wide;
  picture(20, 10).convertTo(wide, CV_16UC3, 257.0);
  cv::Mat img = decode(encode(".png", wide));
  EXPECT_EQ(img.type(), CV_8UC3);
  EXPECT_EQ(img.cols, 20);
}

TEST(ImageDecode, EmptyAndNonImageBytes) {
  EXPECT_EQ(state_of({}), "22P03");
  EXPECT_EQ(state_of({'h', 'e', 'l', 'l', 'o'}), "22P03");
  EXPECT_EQ(state_of({0xFF, 0xD8}), "22P03");
  EXPECT_EQ(state_of({0xFF, 0xD8, 0xFF}), "22P03");
  Bytes gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0};
  EXPECT_EQ(state_of(gif), "22P03");
  try {
    decode({});
    FAIL();
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "empty image");
  }
}

// Every strict prefix of a valid image is refused: libjpeg/libpng would return a partly grey
// image with only a warning.
TEST(ImageDecode, EveryTruncationIsAnError) {
  cv::Mat src = picture(64, 48);
  cv::Mat gray = picture(64, 48, 1);
  auto formats = all_formats(src);
  formats.push_back({"grayscale JPEG", encode(".jpg", gray)});
  formats.push_back({"RGBA PNG", encode(".png", picture(30, 20, 4))});
  for (const auto &e : formats) {
    ASSERT_EQ(state_of(e.bytes), "") << e.name;
    size_t n = e.bytes.size();
    size_t step = n > 3000 ? n / 1500 : 1;  // at least 1500 offsets, all of them for small files
    for (size_t len = 0; len < n; len += (len + 64 >= n ? 1 : step)) {
      Bytes cut(e.bytes.begin(), e.bytes.begin() + len);
      EXPECT_EQ(state_of(cut), "22P03") << e.name << " cut at " << len << " of " << n;
    }
  }
}

TEST(ImageDecode, TruncatedRealJpegIsAnError) {
  Bytes b = read_file(shared_image("10000"));
  ASSERT_GT(b.size(), 1000u);
  for (size_t len : {size_t(2), size_t(100), size_t(600), b.size() / 2, b.size() - 2, b.size() - 1})
    EXPECT_EQ(state_of(Bytes(b.begin(), b.begin() + len)), "22P03") << len;
}

// Structure intact, entropy-coded data cut short: libjpeg would warn "premature end of data
// segment" and fill the rest with grey; the decoder refuses it.
TEST(ImageDecode, JpegWithCutEntropyDataIsAnError) {
  for (const auto &src : {picture(64, 48), picture(64, 48, 1)}) {
    Bytes b = encode(".jpg", src);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < b.size(); ++i)
      if (b[i] == 0xFF && b[i + 1] == 0xDA) sos = i;
    ASSERT_GT(sos, 0u);
    size_t data = sos + 2 + ((size_t(b[sos + 2]) << 8) | b[sos + 3]);
    for (size_t cut = data + 10; cut + 2 < b.size(); cut += (b.size() - data) / 7) {
      Bytes c(b.begin(), b.begin() + cut);
      if (c.back() == 0xFF) c.pop_back();
      c.push_back(0xFF);
      c.push_back(0xD9);
      try {
        decode(c);
        ADD_FAILURE() << "cut at " << cut << " accepted";
      } catch (const Error &e) {
        EXPECT_STREQ(e.sqlstate(), "22P03");
        EXPECT_STREQ(e.what(), "corrupt JPEG image");
        EXPECT_NE(e.detail().find("Corrupt JPEG data"), std::string::npos) << e.detail();
      }
    }
  }
}

// Bytes overwritten inside the entropy-coded data: most such images are refused (libjpeg's
// corrupt-data warnings are errors here); whatever is accepted is a well-formed image.
TEST(ImageDecode, CorruptJpegEntropyDataIsMostlyDetected) {
  Bytes b = encode(".jpg", picture(64, 48));
  size_t sos = 0;
  for (size_t i = 2; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xDA) sos = i;
  size_t data = sos + 14;
  std::mt19937 rng(7);
  int refused = 0, total = 200;
  for (int k = 0; k < total; ++k) {
    Bytes c = b;
    size_t at = data + rng() % (c.size() - data - 40);
    for (int j = 0; j < 16; ++j) c[at + j] = static_cast<uint8_t>(rng() & 0x7F);
    if (state_of(c) == "22P03") ++refused;
  }
  EXPECT_GT(refused, total / 2) << refused << " of " << total << " refused";
  std::printf("corrupt JPEGs refused: %d of %d\n", refused, total);
}

TEST(ImageDecode, TrailingBytesAfterTheImageAreAccepted) {
  for (const char *ext : {".jpg", ".png"}) {
    Bytes b = encode(ext, picture(16, 16));
    cv::Mat plain = decode(b);
    b.insert(b.end(), {0, 0, 0, 0, 1, 2, 3});
    EXPECT_TRUE(same_pixels(decode(b), plain)) << ext;
  }
}

// Random bytes, alone or behind a valid signature, and valid images with corrupted bytes: a
// clean lookalike::Error or a well-formed image, never a crash or another exception.
TEST(ImageDecode, CorruptDataNeverCrashes) {
  std::mt19937 rng(42);
  auto check = [](const Bytes &b, const std::string &what) {
    try {
      cv::Mat img = decode(b);
      EXPECT_EQ(img.type(), CV_8UC3) << what;
      EXPECT_FALSE(img.empty()) << what;
    } catch (const Error &e) {
      EXPECT_TRUE(std::string(e.sqlstate()) == "22P03" || std::string(e.sqlstate()) == "54000")
          << what << ": " << e.sqlstate() << " " << e.what();
    }
  };
  const Bytes prefixes[] = {{},
                            {0xFF, 0xD8, 0xFF},
                            {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A},
                            {'R', 'I', 'F', 'F', 0x40, 0, 0, 0, 'W', 'E', 'B', 'P'},
                            {'B', 'M'}};
  for (const auto &prefix : prefixes) {
    for (int i = 0; i < 300; ++i) {
      Bytes b = prefix;
      size_t n = rng() % 400;
      for (size_t k = 0; k < n; ++k) b.push_back(static_cast<uint8_t>(rng()));
      check(b, "random bytes");
    }
  }
  for (const auto &e : all_formats(picture(48, 32))) {
    for (int i = 0; i < 200; ++i) {
      Bytes b = e.bytes;
      int flips = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      check(b, e.name + " with corrupted bytes");
    }
  }
}

TEST(ImageDecode, PixelLimitIsCheckedBeforeDecoding) {
  Bytes png = encode(".png", picture(64, 48));
  EXPECT_EQ(state_of(png, 64 * 48), "");
  EXPECT_EQ(state_of(png, 64 * 48 - 1), "54000");
  try {
    decode(png, 1000);
    FAIL();
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "PNG image of 64x48 pixels exceeds the limit of 1000 pixels");
    EXPECT_NE(e.hint().find("lookalike.max_image_pixels"), std::string::npos);
  }
}

// Decompression bombs: tiny files declaring huge images are refused from the header alone.
TEST(ImageDecode, HugeDeclaredDimensionsAreRefused) {
  // PNG: patch IHDR of a real 1x1 PNG to 100000 x 100000 (the CRC no longer matters: the
  // header check comes first).
  Bytes png = encode(".png", picture(1, 1));
  auto put_be32 = [](uint8_t *p, uint32_t v) {
    p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
  };
  put_be32(&png[16], 100000);
  put_be32(&png[20], 100000);
  EXPECT_EQ(state_of(png), "54000");
  put_be32(&png[16], 3000000);  // one side beyond OpenCV's 2^20, few pixels
  put_be32(&png[20], 1);
  EXPECT_EQ(state_of(png, lookalike::image::kMaxImagePixelsLimit), "54000");

  // JPEG: patch the frame header (SOF) to 65535 x 65535.
  Bytes jpg = encode(".jpg", picture(8, 8));
  size_t sof = 0;
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      sof = i;
      break;
    }
  ASSERT_GT(sof, 0u);
  jpg[sof + 5] = jpg[sof + 6] = jpg[sof + 7] = jpg[sof + 8] = 0xFF;
  EXPECT_EQ(state_of(jpg), "54000");

  // BMP: width 2^21 in the info header.
  Bytes bmp = encode(".bmp", picture(4, 4));
  bmp[18] = 0, bmp[19] = 0, bmp[20] = 0x20, bmp[21] = 0;
  EXPECT_EQ(state_of(bmp, lookalike::image::kMaxImagePixelsLimit), "54000");

  // WebP (VP8X canvas of 16384 x 16384), built by hand.
  Bytes webp = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E',  'B',  'P', 'V',  'P',  '8',
                'X', 10,  0,   0,   0,  0, 0, 0, 0,   0xFF, 0x3F, 0,   0xFF, 0x3F, 0};
  EXPECT_EQ(state_of(webp), "54000");
}

TEST(ImageDecode, ZeroSizeIsAnError) {
  Bytes png = encode(".png", picture(1, 1));
  png[16] = png[17] = png[18] = png[19] = 0;
  EXPECT_EQ(state_of(png), "22P03");
}

// A JPEG with an EXIF orientation (6: rotate 90 degrees) is turned as cv::imread turns it; the
// header's width and height are then swapped, which is not a corruption.
TEST(ImageDecode, ExifOrientationIsApplied) {
  Bytes jpg = encode(".jpg", picture(40, 20));
  const Bytes app1 = {0xFF, 0xE1, 0,  34, 'E', 'x', 'i', 'f', 0, 0,        // APP1, length 34
                      'I',  'I',  42, 0,  8,   0,   0,   0,                // TIFF header, IFD at 8
                      1,    0,                                             // one entry
                      0x12, 0x01, 3,  0,  1,   0,   0,   0,   6, 0, 0, 0,  // Orientation = 6
                      0,    0,    0,  0};                                  // no next IFD
  jpg.insert(jpg.begin() + 2, app1.begin(), app1.end());
  cv::Mat img = decode(jpg);
  EXPECT_EQ(img.cols, 20);
  EXPECT_EQ(img.rows, 40);
  EXPECT_TRUE(same_pixels(img, cv::imdecode(jpg, cv::IMREAD_COLOR)));
}

// Every image of the study decodes, to exactly what cv::imread gives the reference.
TEST(ImageDecode, AllFashionImagesDecodeLikeImread) {
  std::ifstream subset(std::string(LOOKALIKE_SHARED_DIR) + "/data/fashion/subset.csv");
  ASSERT_TRUE(subset.good());
  std::string line;
  std::getline(subset, line);  // header
  int count = 0, gray = 0;
  while (std::getline(subset, line)) {
    std::string id = line.substr(0, line.find(','));
    Bytes b = read_file(shared_image(id));
    cv::Mat img = decode(b);
    ASSERT_TRUE(same_pixels(img, cv::imread(shared_image(id), cv::IMREAD_COLOR))) << id;
    std::vector<cv::Mat> ch;
    cv::split(img, ch);
    if (cv::norm(ch[0], ch[1], cv::NORM_INF) == 0 && cv::norm(ch[0], ch[2], cv::NORM_INF) == 0)
      ++gray;
    ++count;
  }
  EXPECT_EQ(count, 6217);
  EXPECT_GE(gray, 36);  // the 36 single-channel JPEGs (and any colour image that is all grey)
}

// A CMYK JPEG (as print workflows write them), made with libjpeg: OpenCV converts it to BGR.
TEST(ImageDecode, CmykJpegDecodesLikeImdecode) {
  const int w = 24, h = 16;
  cv::Mat cmyk = picture(w, h, 4, 3);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char *buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = cmyk.ptr<uint8_t>(static_cast<int>(c.next_scanline));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  Bytes b(buf, buf + size);
  std::free(buf);
  cv::Mat img = decode(b);
  EXPECT_EQ(img.type(), CV_8UC3);
  EXPECT_EQ(img.cols, w);
  EXPECT_TRUE(same_pixels(img, cv::imdecode(b, cv::IMREAD_COLOR)));
  EXPECT_EQ(state_of(Bytes(b.begin(), b.end() - 1)), "22P03");
}

TEST(ImageDecode, RealFashionImages) {
  for (const char *id : {"10000", "10017", "10021"}) {
    Bytes b = read_file(shared_image(id));
    cv::Mat img = decode(b);
    EXPECT_EQ(img.type(), CV_8UC3) << id;
    EXPECT_TRUE(same_pixels(img, cv::imread(shared_image(id), cv::IMREAD_COLOR))) << id;
  }
  // Some of the set's JPEGs are single-channel: three equal channels, as cv::imread gives.
  for (const char *id : {"10716", "13162", "13378"}) {
    Bytes b = read_file(shared_image(id));
    cv::Mat img = decode(b);
    ASSERT_EQ(img.type(), CV_8UC3) << id;
    EXPECT_EQ(img.cols, 60);
    EXPECT_EQ(img.rows, 80);
    std::vector<cv::Mat> ch;
    cv::split(img, ch);
    EXPECT_EQ(cv::norm(ch[0], ch[1], cv::NORM_INF), 0) << id;
    EXPECT_EQ(cv::norm(ch[0], ch[2], cv::NORM_INF), 0) << id;
    EXPECT_TRUE(same_pixels(img, cv::imread(shared_image(id), cv::IMREAD_COLOR))) << id;
  }
}

// ---- histogram ----------------------------------------------------------------------------

namespace {

// The reference's computation with OpenCV alone: calcHist, then float32 division by the sum.
std::vector<float> calc_hist_reference(const cv::Mat &bgr, int bins) {
  const int channels[] = {0, 1, 2};
  const int sizes[] = {bins, bins, bins};
  const float range[] = {0.0f, 256.0f};
  const float *ranges[] = {range, range, range};
  cv::Mat hist;
  cv::calcHist(&bgr, 1, channels, cv::Mat(), hist, 3, sizes, ranges, true, false);
  std::vector<float> h(hist.ptr<float>(), hist.ptr<float>() + bins * bins * bins);
  float sum = 0.0f;
  for (float v : h) sum += v;
  for (float &v : h) v = v / sum;
  return h;
}

std::vector<float> ours(const cv::Mat &bgr, int bins) {
  std::vector<float> h(image::histogram_dims(bins));
  image::color_histogram(bgr, bins, h.data());
  return h;
}

}  // namespace

TEST(ColorHistogram, CountingEqualsCalcHistBitForBit) {
  for (unsigned seed = 1; seed <= 5; ++seed) {
    cv::Mat img = picture(97 + seed, 61, 3, seed);
    for (int bins = 1; bins <= 25; ++bins) {
      std::vector<float> h(image::histogram_dims(bins));
      image::count_colors(img, bins, h.data());
      EXPECT_EQ(h, calc_hist_reference(img, bins)) << "bins " << bins << " seed " << seed;
    }
  }
}

TEST(ColorHistogram, EqualsResizeThenCalcHist) {
  for (const char *id : {"10000", "10716", "13162", "10017"}) {
    cv::Mat img = decode(read_file(shared_image(id)));
    for (int bins : {1, 2, 4, 7, 8, 16, 25}) {
      cv::Mat resized;
      cv::resize(img, resized, cv::Size(224, 224), 0, 0, cv::INTER_LINEAR);
      EXPECT_EQ(ours(img, bins), calc_hist_reference(resized, bins)) << id << " bins " << bins;
    }
  }
}

TEST(ColorHistogram, DimensionOrderIsBlueGreenRed) {
  // A pure colour fills one bin: B=255 G=0 R=128 with 8 bins -> (7*8 + 0)*8 + 4 = 452.
  cv::Mat img(10, 10, CV_8UC3, cv::Scalar(255, 0, 128));
  std::vector<float> h = ours(img, 8);
  ASSERT_EQ(h.size(), 512u);
  for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(h[i], i == 452 ? 1.0f : 0.0f) << i;
  // bins = 1: everything in the only bin.
  EXPECT_EQ(ours(picture(5, 5), 1), std::vector<float>{1.0f});
}

TEST(ColorHistogram, SumsToOne) {
  for (int bins : {2, 8, 16}) {
    std::vector<float> h = ours(picture(60, 80), bins);
    double sum = 0;
    for (float v : h) {
      EXPECT_GE(v, 0.0f);
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(ColorHistogram, BinsOutOfRange) {
  for (int bins : {0, -1, 26, 32, 33, 1000}) {
    try {
      image::check_histogram_bins(bins);
      FAIL() << bins;
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), "22023");
      EXPECT_NE(std::string(e.what()).find("between 1 and 25"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(image::check_histogram_bins(1));
  EXPECT_NO_THROW(image::check_histogram_bins(25));
}

// ---- PNG through libpng: the same pixels as cv::imdecode, and nothing on stderr -------------

namespace {

// A PNG written with libpng itself, for the colour types, bit depths, palettes and interlacing
// that cv::imencode cannot produce. rows: height rows of packed samples as PNG stores them.
// level: zlib compression level (0 stores the data, so that a test can patch it).
Bytes write_png(int w, int h, int color_type, int depth, bool interlaced,
                const std::vector<Bytes> &rows, const std::vector<png_color> &palette = {},
                const Bytes &trns = {}, int level = 6) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write the test image";
    return {};
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, size_t len) {
        auto *o = static_cast<Bytes *>(png_get_io_ptr(p));
        o->insert(o->end(), data, data + len);
      },
      nullptr);
  png_set_compression_level(png, level);
  png_set_filter(png, 0, PNG_FILTER_NONE);
  png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), depth, color_type,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), int(palette.size()));
  if (!trns.empty()) png_set_tRNS(png, info, trns.data(), int(trns.size()), nullptr);
  png_write_info(png, info);
  std::vector<png_bytep> ptrs;
  for (const Bytes &r : rows) ptrs.push_back(const_cast<png_bytep>(r.data()));
  png_write_image(png, ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// Rows of `bytes_per_row` seeded random bytes.
std::vector<Bytes> random_rows(int h, size_t bytes_per_row, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Bytes> rows(size_t(h), Bytes(bytes_per_row, 0));
  for (Bytes &r : rows)
    for (uint8_t &b : r) b = uint8_t(rng());
  return rows;
}

cv::Mat opencv_decode(const Bytes &b) {
  return cv::imdecode(cv::Mat(1, int(b.size()), CV_8UC1, const_cast<uint8_t *>(b.data())),
                      cv::IMREAD_COLOR);
}

}  // namespace

TEST(ImageDecodePng, SamePixelsAsOpenCvForEveryKindOfPng) {
  const int w = 37, h = 23;
  std::vector<Encoded> cases;
  for (int channels : {1, 3, 4}) {
    cv::Mat img8 = picture(w, h, channels, unsigned(channels));
    cv::Mat img16;
    img8.convertTo(img16, CV_16U, 257.0);
    img16 += cv::Scalar::all(91);  // low bytes that differ from the high ones
    cases.push_back({"imencode 8-bit, channels " + std::to_string(channels), encode(".png", img8)});
    cases.push_back(
        {"imencode 16-bit, channels " + std::to_string(channels), encode(".png", img16)});
  }
  std::vector<png_color> palette;
  for (int i = 0; i < 16; ++i)
    palette.push_back({uint8_t(i * 16), uint8_t(255 - i * 9), uint8_t((i * 77) & 0xFF)});
  for (bool interlaced : {false, true}) {
    const std::string il = interlaced ? " interlaced" : "";
    for (int depth : {1, 2, 4, 8, 16})
      cases.push_back({"gray " + std::to_string(depth) + "-bit" + il,
                       write_png(w, h, PNG_COLOR_TYPE_GRAY, depth, interlaced,
                                 random_rows(h, (size_t(w) * depth + 7) / 8, unsigned(depth)))});
    cases.push_back(
        {"gray+alpha 8-bit" + il, write_png(w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, interlaced,
                                            random_rows(h, size_t(w) * 2, 5))});
    cases.push_back({"RGB 8-bit" + il, write_png(w, h, PNG_COLOR_TYPE_RGB, 8, interlaced,
                                                 random_rows(h, size_t(w) * 3, 6))});
    cases.push_back({"RGBA 16-bit" + il, write_png(w, h, PNG_COLOR_TYPE_RGB_ALPHA, 16, interlaced,
                                                   random_rows(h, size_t(w) * 8, 7))});
    // 4-bit palette indices: only indices < 16 occur in a byte's two nibbles.
    cases.push_back(
        {"palette 4-bit with tRNS" + il,
         write_png(w, h, PNG_COLOR_TYPE_PALETTE, 4, interlaced,
                   random_rows(h, (size_t(w) * 4 + 7) / 8, 8), palette, Bytes{0, 128, 255})});
  }
  for (const Encoded &c : cases) {
    ASSERT_FALSE(c.bytes.empty()) << c.name;
    cv::Mat want = opencv_decode(c.bytes);
    ASSERT_FALSE(want.empty()) << c.name;
    cv::Mat got = decode(c.bytes);
    EXPECT_TRUE(same_pixels(got, want)) << c.name;
  }
}

// A PNG whose only row has filter type 9 (there are 0..4): libpng's "bad adaptive filter value".
// Before our own libpng path, cv::imdecode let libpng print "libpng error: ..." on stderr -- in
// a backend, a raw line in the server log for every such image any role sends.
TEST(ImageDecodePng, CorruptDataIsAnErrorAndNothingIsPrinted) {
  Bytes png = write_png(1, 1, PNG_COLOR_TYPE_GRAY, 8, false, {Bytes{200}}, {}, {}, 0);
  // Stored (level 0) zlib data: IDAT payload = 2-byte zlib header, 5-byte stored-block header,
  // the raw row [filter, sample], 4-byte Adler-32. Patch the filter and fix both checksums.
  size_t i = 8;
  while (std::memcmp(&png[i + 4], "IDAT", 4) != 0)
    i += 12 + ((size_t(png[i]) << 24) | (size_t(png[i + 1]) << 16) | (size_t(png[i + 2]) << 8) |
               png[i + 3]);
  const size_t len = (size_t(png[i + 2]) << 8) | png[i + 3];
  ASSERT_EQ(len, 2u + 5u + 2u + 4u);
  uint8_t *payload = &png[i + 8];
  ASSERT_EQ(payload[7], 0);  // filter type None
  payload[7] = 9;
  const uLong adler = adler32(adler32(0, nullptr, 0), payload + 7, 2);
  for (int k = 0; k < 4; ++k) payload[9 + k] = uint8_t(adler >> (24 - 8 * k));
  const uLong crc = crc32(crc32(0, nullptr, 0), &png[i + 4], uInt(4 + len));
  for (int k = 0; k < 4; ++k) png[i + 8 + len + size_t(k)] = uint8_t(crc >> (24 - 8 * k));

  testing::internal::CaptureStderr();
  std::string state, detail;
  try {
    decode(png);
  } catch (const Error &e) {
    state = e.sqlstate();
    detail = e.detail();
  }
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_EQ(state, "22P03");
  EXPECT_NE(detail.find("adaptive filter"), std::string::npos) << detail;
  EXPECT_EQ(printed, "");
  // Undecodable by OpenCV as well (the error is not ours alone); OpenCV lets libpng print.
  testing::internal::CaptureStderr();
  EXPECT_TRUE(opencv_decode(png).empty());
  testing::internal::GetCapturedStderr();
}
