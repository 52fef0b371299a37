// Unit tests of the model runtime (src/model/runtime.cpp) against the real TorchScript files in
// ${LOOKALIKE_SHARED_DIR}/models.
#include "model/runtime.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <dlfcn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <ATen/Parallel.h>
#include <opencv2/imgcodecs.hpp>

#include "common/errors.hpp"

namespace lm = lookalike::model;

namespace {

const std::string kModels = std::string(LOOKALIKE_SHARED_DIR) + "/models/";
const std::string kFeatures = kModels + "mobilenet_v2-imagenet-features.pt";
const std::string kLogits = kModels + "mobilenet_v2-imagenet-logits.pt";
const std::string kImages = std::string(LOOKALIKE_SHARED_DIR) + "/data/fashion/images/";

std::vector<uint8_t> file_bytes(const std::string &path) {
  std::vector<char> b = lm::read_file(path);
  return std::vector<uint8_t>(b.begin(), b.end());
}

std::string sqlstate_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const lookalike::Error &e) {
    return e.sqlstate();
  } catch (const lm::BatchImageError &e) {
    try {
      std::rethrow_exception(e.cause());
    } catch (const lookalike::Error &inner) {
      return std::string("batch:") + std::to_string(e.index()) + ":" + inner.sqlstate();
    }
  }
  return "none";
}

}  // namespace

TEST(ModelSha256, KnownVectors) {
  EXPECT_EQ(lm::sha256_hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(lm::sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // The shared file's sha256 as published in models/SOURCES.md.
  std::vector<char> b = lm::read_file(kFeatures);
  EXPECT_EQ(lm::sha256_hex(b.data(), b.size()),
            "e438e9679ff6d92e9dc2c76d3e106a4a91cc71d544e54cdd98898af624c0fb54");
}

TEST(ModelPreprocess, MatchesReferenceArithmetic) {
  lm::Normalization n;
  n.input_size = 8;
  lm::Preprocessor pre(n);
  // A 2x2 BGR image of one colour: resizing keeps it, so every output equals the table entry.
  cv::Mat img(2, 2, CV_8UC3, cv::Scalar(10, 200, 255));  // B=10, G=200, R=255
  std::vector<float> out(pre.floats_per_image());
  pre(img, out.data());
  const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
  const int rgb[3] = {255, 200, 10};
  for (int c = 0; c < 3; ++c) {
    float x = float(rgb[c]) / 255.0f;
    float want = (x - mean[c]) / sd[c];
    for (int k = 0; k < 64; ++k) EXPECT_EQ(out[size_t(c) * 64 + k], want) << c;
  }
}

TEST(ModelPreprocess, PadKeepsTheAspectRatioOnWhite) {
  lm::Normalization n;
  n.input_size = 8;
  n.resize = lm::Resize::kPad;
  lm::Preprocessor pre(n);
  // A 3x6 (wide) image of one colour becomes an 8x4 band centred in rows 2..5; the rows above
  // and below are white. A tall image gets white columns instead.
  const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
  const int rgb[3] = {255, 200, 10};
  auto value = [&](int c, int v) { return (float(v) / 255.0f - mean[c]) / sd[c]; };
  std::vector<float> out(pre.floats_per_image());
  for (bool wide : {true, false}) {
    pre(cv::Mat(wide ? 3 : 6, wide ? 6 : 3, CV_8UC3, cv::Scalar(10, 200, 255)), out.data());
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) {
          const int across = wide ? y : x;  // the coordinate along which the image is padded
          EXPECT_EQ(out[size_t(c) * 64 + size_t(y) * 8 + size_t(x)],
                    across >= 2 && across < 6 ? value(c, rgb[c]) : value(c, 255))
              << wide << " " << c << " " << y << " " << x;
        }
  }
  // A square image is resized exactly as with kStretch.
  lm::Normalization s = n;
  s.resize = lm::Resize::kStretch;
  lm::Preprocessor stretch(s);
  cv::Mat square(5, 5, CV_8UC3);
  cv::randu(square, 0, 256);
  std::vector<float> a(pre.floats_per_image()), b(a.size());
  pre(square, a.data());
  stretch(square, b.data());
  EXPECT_EQ(a, b);
}

TEST(ModelPreprocess, ABoxOfTheImagesShapeNeedsNoPadding) {
  // input_width 12 x input_size 16: a 3:4 portrait box. An image of the box's shape is resized
  // as with kStretch (no white at all); a square image is padded above and below (12x12 centred
  // in rows 2..13). The planes are 16 rows of 12.
  lm::Normalization n;
  n.input_size = 16;
  n.input_width = 12;
  n.resize = lm::Resize::kPad;
  lm::Preprocessor pre(n);
  EXPECT_EQ(pre.height(), 16);
  EXPECT_EQ(pre.width(), 12);
  ASSERT_EQ(pre.floats_per_image(), size_t(3 * 16 * 12));
  lm::Normalization s = n;
  s.resize = lm::Resize::kStretch;
  lm::Preprocessor stretch(s);
  cv::Mat portrait(8, 6, CV_8UC3);  // rows x cols: 6 wide, 8 high
  cv::randu(portrait, 0, 256);
  std::vector<float> a(pre.floats_per_image()), b(a.size());
  pre(portrait, a.data());
  stretch(portrait, b.data());
  EXPECT_EQ(a, b);

  const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
  const int rgb[3] = {255, 200, 10};
  auto value = [&](int c, int v) { return (float(v) / 255.0f - mean[c]) / sd[c]; };
  pre(cv::Mat(4, 4, CV_8UC3, cv::Scalar(10, 200, 255)), a.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 12; ++x)
        EXPECT_EQ(a[size_t(c) * 192 + size_t(y) * 12 + size_t(x)],
                  y >= 2 && y < 14 ? value(c, rgb[c]) : value(c, 255))
            << c << " " << y << " " << x;
  // A bad width is refused like a bad size.
  for (int width : {7, 5000}) {
    n.input_width = width;
    EXPECT_EQ(sqlstate_of([&] { lm::Preprocessor p(n); }), "22023") << width;
  }
}

TEST(ModelPreprocess, RejectsBadNormalization) {
  lm::Normalization n;
  n.input_size = 4;
  n.stddev[1] = 0;
  EXPECT_EQ(sqlstate_of([&] { lm::Preprocessor p(n); }), "22023");
  n.stddev[1] = 1;
  n.input_size = 5000;
  EXPECT_EQ(sqlstate_of([&] { lm::Preprocessor p(n); }), "22023");
}

TEST(ModelLoad, Errors) {
  EXPECT_EQ(sqlstate_of([] { lm::Model::load("/nonexistent/model.pt", ""); }), "58P01");
  EXPECT_EQ(sqlstate_of([] { lm::Model::load("/", ""); }), "58030");
  // Not TorchScript: an image file.
  EXPECT_EQ(sqlstate_of([] { lm::Model::load(kImages + "1530.jpg", ""); }), "22023");
  // Wrong expected digest.
  EXPECT_EQ(sqlstate_of([] { lm::Model::load(kFeatures, std::string(64, '0')); }), "XX001");
}

// Stored bytes are read in place (no copy): an archive cut short, or cut to nothing, is refused
// as not TorchScript (22023), never read past its end; the whole archive loads.
TEST(ModelLoad, StoredBytesCutShortAreRefused) {
  const std::vector<char> whole = lm::read_file(kFeatures);
  for (size_t keep : {size_t(0), size_t(22), whole.size() / 2, whole.size() - 1}) {
    std::vector<char> cut(whole.begin(), whole.begin() + keep);
    const std::string sha = lm::sha256_hex(cut.data(), cut.size());
    EXPECT_EQ(sqlstate_of([&] { lm::Model::load_bytes("cut", cut, sha); }), "22023") << keep;
  }
  const std::string sha = lm::sha256_hex(whole.data(), whole.size());
  EXPECT_EQ(lm::Model::load_bytes("whole", whole, sha)->sha256(), sha);
}

// /dev/zero was read until allocation failed, a FIFO blocked the backend.
TEST(ModelLoad, RefusesNonRegularAndOversizedFiles) {
  EXPECT_EQ(sqlstate_of([] { lm::read_file("/dev/zero"); }), "58030");
  const std::string fifo = ::testing::TempDir() + "lookalike_model_fifo";
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(sqlstate_of([&] { lm::Model::load(fifo, ""); }), "58030");  // returns, no writer
  std::remove(fifo.c_str());
  // larger than the limit: refused before reading (54000); at the limit: read whole
  const int64_t size = int64_t(file_bytes(kImages + "1530.jpg").size());
  EXPECT_EQ(sqlstate_of([&] { lm::read_file(kImages + "1530.jpg", size - 1); }), "54000");
  EXPECT_EQ(int64_t(lm::read_file(kImages + "1530.jpg", size).size()), size);
}

// A model is registered under its canonical path: links, "." and ".." resolved.
TEST(ModelLoad, CanonicalPath) {
  const std::string dir = ::testing::TempDir() + "lookalike_canon";
  const std::string link = dir + "/link.pt";
  std::remove(link.c_str());
  ::rmdir(dir.c_str());
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string target = lm::canonical_path(kFeatures);
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_EQ(lm::canonical_path(link), target);
  EXPECT_EQ(lm::canonical_path(dir + "/../lookalike_canon/./link.pt"), target);
  EXPECT_EQ(target.find("/../"), std::string::npos);
  EXPECT_EQ(sqlstate_of([&] { lm::canonical_path(dir + "/missing.pt"); }), "58P01");
  std::remove(link.c_str());
  ::rmdir(dir.c_str());
}

TEST(ModelForward, FeaturesAreUnitVectorsOf1280) {
  lm::configure_threads(2);
  auto m = lm::Model::load(kFeatures,
                           "e438e9679ff6d92e9dc2c76d3e106a4a91cc71d544e54cdd98898af624c0fb54");
  EXPECT_EQ(m->optimize_error(), "");
  lm::Normalization n;
  EXPECT_EQ(m->probe_dims(n), 1280);
  lm::Preprocessor pre(n);
  std::vector<uint8_t> a = file_bytes(kImages + "1530.jpg"), b = file_bytes(kImages + "1550.jpg");
  lm::EncodedImage imgs[3] = {{a.data(), a.size()}, {b.data(), b.size()}, {a.data(), a.size()}};
  std::vector<float> input, out;
  lm::prepare_batch(pre, imgs, 3, 50'000'000, input);
  ASSERT_EQ(m->forward(input.data(), 3, 224, 224, out), 1280);
  for (int i = 0; i < 3; ++i) {
    double s = 0;
    for (int j = 0; j < 1280; ++j) s += double(out[i * 1280 + j]) * out[i * 1280 + j];
    EXPECT_NEAR(std::sqrt(s), 1.0, 1e-5);
  }
  // Same image, same vector (within a batch); different images differ.
  double same = 0, diff = 0;
  for (int j = 0; j < 1280; ++j) {
    same = std::max(same, double(std::fabs(out[j] - out[2 * 1280 + j])));
    diff = std::max(diff, double(std::fabs(out[j] - out[1280 + j])));
  }
  EXPECT_LT(same, 1e-5);
  EXPECT_GT(diff, 1e-3);
  // The FPU state of this thread is restored after inference (no flush-to-zero left behind).
  volatile float tiny = 1e-38f;
  volatile float half = tiny / 4;
  EXPECT_GT(half, 0.0f);
}

TEST(ModelForward, BadImagesNameTheirIndex) {
  lm::configure_threads(2);
  lm::Normalization n;
  lm::Preprocessor pre(n);
  std::vector<uint8_t> a = file_bytes(kImages + "1530.jpg");
  std::vector<uint8_t> cut(a.begin(), a.begin() + 200);
  const uint8_t junk[] = "not an image at all";
  lm::EncodedImage imgs[3] = {{a.data(), a.size()}, {cut.data(), cut.size()}, {junk, sizeof junk}};
  std::vector<float> input;
  EXPECT_EQ(sqlstate_of([&] { lm::prepare_batch(pre, imgs, 3, 50'000'000, input); }),
            "batch:1:22P03");
  EXPECT_EQ(sqlstate_of([&] { lm::prepare_batch(pre, imgs, 1, 100, input); }), "batch:0:54000");
}

TEST(ModelPreprocess, RandomCropsAreSeededAndWithinBounds) {
  cv::Mat img(80, 60, CV_8UC3, cv::Scalar(1, 2, 3));
  double area = 0;
  for (uint64_t k = 0; k < 200; ++k) {
    cv::Mat c = lm::random_crop(img, lm::crop_key(7, int64_t(k), 1));
    cv::Size size;
    cv::Point at;
    c.locateROI(size, at);
    EXPECT_GE(at.x, 0);
    EXPECT_GE(at.y, 0);
    EXPECT_LE(at.x + c.cols, 60);
    EXPECT_LE(at.y + c.rows, 80);
    const double a = double(c.cols) * c.rows / (60.0 * 80.0);
    EXPECT_GE(a, 0.6 * 0.8 - 0.05);  // a ratio change may clip one side at the border
    EXPECT_LE(a, 1.0);
    area += a;
  }
  EXPECT_GT(area / 200, 0.6);
  EXPECT_LT(area / 200, 0.95);
  // the same key, the same crop; another key, (almost always) another crop
  cv::Mat a = lm::random_crop(img, 42), b = lm::random_crop(img, 42), c = lm::random_crop(img, 43);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a.data != c.data || a.size() != c.size());
}

TEST(ModelPreprocess, ExtraViewsFollowEachImage) {
  lm::configure_threads(2);
  lm::Normalization n;
  n.input_size = 32;
  lm::Preprocessor pre(n);
  std::vector<uint8_t> a = file_bytes(kImages + "1530.jpg"), b = file_bytes(kImages + "1550.jpg");
  lm::EncodedImage imgs[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  std::vector<float> plain, views, again;
  lm::prepare_batch(pre, imgs, 2, 50'000'000, plain);
  lm::prepare_batch(pre, imgs, 2, 50'000'000, views, 2, 5);
  lm::prepare_batch(pre, imgs, 2, 50'000'000, again, 2, 5);
  const size_t per = pre.floats_per_image();
  ASSERT_EQ(views.size(), 6 * per);
  EXPECT_EQ(views, again);  // deterministic for a key
  // view 0 of each image is the image itself; views 1 and 2 are crops of it
  EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + long(per), views.begin()));
  EXPECT_TRUE(std::equal(plain.begin() + long(per), plain.end(), views.begin() + long(3 * per)));
  for (size_t v : {1, 2, 4, 5})
    EXPECT_FALSE(std::equal(views.begin() + long(v * per), views.begin() + long((v + 1) * per),
                            views.begin() + long((v / 3) * 3 * per)))
        << v;
}

TEST(ModelForward, LogitsModelRecognisesABackpack) {
  // The logits variant checks the whole chain: a backpack photo ranks ImageNet class 414
  // (backpack) among its top 5.
  lm::configure_threads(2);
  auto m = lm::Model::load(kLogits, "");
  lm::Normalization n;
  EXPECT_EQ(m->probe_dims(n), 1000);
  lm::Preprocessor pre(n);
  // 4582 is a Backpacks product in styles.csv (the reference ranks class 414 in its top 5).
  std::vector<uint8_t> a = file_bytes(kImages + "4582.jpg");
  lm::EncodedImage img{a.data(), a.size()};
  std::vector<float> input, out;
  lm::prepare_batch(pre, &img, 1, 50'000'000, input);
  ASSERT_EQ(m->forward(input.data(), 1, 224, 224, out), 1000);
  int above = 0;
  for (int j = 0; j < 1000; ++j) above += out[j] > out[414];
  EXPECT_LT(above, 5);
}

// lookalike.threads accepts up to 256, but a backend never runs more threads than CPUs online.
TEST(ModelThreads, NeverMoreThanTheCpus) {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  ASSERT_GT(cpus, 0);
  lm::configure_threads(256);
  EXPECT_EQ(at::get_num_threads(), int(cpus));
  lm::configure_threads(0);
  EXPECT_EQ(at::get_num_threads(), 1);
  lm::configure_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
}

// Where the system's BLAS is OpenBLAS (scripts/setup-debian.sh installs its OpenMP build), its
// threads follow lookalike.threads as LibTorch's do; its pthread build, whose own workers spin
// between calls, is held to the calling thread. OpenBLAS starts with one thread per CPU, so on a
// machine with two or more CPUs the last check fails without size_openblas_threads.
TEST(ModelThreads, OpenBlasFollowsTheThreadSetting) {
  void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
  if (!lib) GTEST_SKIP() << "the system's BLAS is not OpenBLAS";
  auto get = reinterpret_cast<int (*)()>(dlsym(lib, "openblas_get_num_threads"));
  auto parallel = reinterpret_cast<int (*)()>(dlsym(lib, "openblas_get_parallel"));
  ASSERT_NE(get, nullptr);
  ASSERT_NE(parallel, nullptr);
  const bool openmp = parallel() == 2;
  lm::configure_threads(2);
  EXPECT_EQ(get(), openmp ? at::get_num_threads() : 1);
  lm::configure_threads(1);
  EXPECT_EQ(get(), 1);
  dlclose(lib);
}

namespace {

// Minor page faults of the second of two rounds of allocating, touching and freeing `bytes`.
long faults_of_a_second_allocation(size_t bytes) {
  auto round = [bytes] {
    char *p = static_cast<char *>(std::malloc(bytes));
    if (p == nullptr) return;
    for (size_t i = 0; i < bytes; i += 4096) p[i] = char(i >> 12);
    volatile char sink = p[bytes / 2];
    (void)sink;
    std::free(p);
  };
  round();
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  round();
  getrusage(RUSAGE_SELF, &after);
  return after.ru_minflt - before.ru_minflt;
}

}  // namespace

// 64 MB is above glibc's largest mmap threshold: by default such a block is unmapped when freed
// and every page faults again on the next allocation (as a batch's activations did); inside a
// TensorHeap it stays in the heap, and the defaults come back when the (outermost) scope ends.
TEST(TensorHeap, FreedBlocksAreReusedWithoutPageFaults) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under AddressSanitizer malloc is ASan's: glibc's thresholds do not apply";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "under AddressSanitizer malloc is ASan's: glibc's thresholds do not apply";
#endif
#endif
  const size_t bytes = size_t(64) << 20;
  const long before = faults_of_a_second_allocation(bytes);
  long inside, nested;
  {
    lm::TensorHeap heap;
    inside = faults_of_a_second_allocation(bytes);
    { lm::TensorHeap inner; }
    nested = faults_of_a_second_allocation(bytes);  // the inner scope did not restore
  }
  const long after = faults_of_a_second_allocation(bytes);
  EXPECT_LT(4 * inside + 16, before) << inside << " faults inside, " << before << " before";
  EXPECT_LT(4 * nested + 16, before) << nested << " faults after a nested scope";
  EXPECT_LT(4 * inside + 16, after) << after << " faults after the scope";
}
