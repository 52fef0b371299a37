// The model runtime: TorchScript image encoders on the CPU with LibTorch. Pure C++ (no
// PostgreSQL). This header keeps LibTorch out of its includers (pimpl), so the SQL side and the
// unit tests compile without LibTorch's headers.
//
// Pipeline (identical to the reference's `cnn`, shared/reference/study_reference.py):
//   decode (8-bit BGR, grayscale replicated) -> resize to SxS (cv::resize, INTER_LINEAR, on the
//   8-bit image) -> RGB -> float32 v/255 -> (v - mean[c]) / stddev[c] -> NCHW -> forward pass
//   -> output [N, D] -> L2-normalise each row.
// The byte -> float step is a 3 x 256 table computed with exactly the reference's float32
// operations, so the model sees bit-identical inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "model/settings.hpp"

namespace lookalike::model {

// io_error: a SQLSTATE of the runtime that errors.hpp does not name.
inline constexpr const char *kSqlstateIoError = "58030";

inline constexpr int kMinInputSize = 8;
inline constexpr int kMaxInputSize = 1024;

// sha256 of a byte string / of a file's contents, as 64 lowercase hex digits.
std::string sha256_hex(const void *data, size_t len);
// The absolute path with every symbolic link, "." and ".." resolved (realpath), as a model is
// registered. Throws Error 58P01 (missing), 58030 (unreadable).
std::string canonical_path(const std::string &path);

// Reads a whole regular file of at most max_bytes. Throws Error 58P01 (missing), 58030
// (unreadable, or not a regular file: a directory, /dev/zero, a FIFO -- never blocks on one),
// 54000 (larger than max_bytes, refused before reading).
std::vector<char> read_file(const std::string &path, int64_t max_bytes = kDefaultMaxModelBytes);

// A model's TorchScript bytes whose sha256 has been computed (once) and checked against its
// registration. `name` (the file's path, or "stored model \"x\"") names them in messages and is
// the loaded Model's path().
struct CheckedModelBytes {
  std::string name;
  std::vector<char> bytes;
  std::string sha256;
};
// Reads a model file (read_file, at most max_bytes) and checks its sha256 against
// expected_sha256 (empty: not checked). Errors as read_file; XX001 "model file has changed".
CheckedModelBytes checked_file_bytes(const std::string &path, const std::string &expected_sha256,
                                     int64_t max_bytes = kDefaultMaxModelBytes);
// The same for bytes held in memory (a model stored in the database, named `where`): XX001
// "stored model has changed".
CheckedModelBytes checked_stored_bytes(const std::string &where, std::vector<char> bytes,
                                       const std::string &expected_sha256);

// How an image becomes the model's input, width x height pixels (input_width x input_size, a
// square unless input_width is set): kStretch resizes it to that box (the aspect ratio is lost
// unless it is the box's; torchvision's Resize((h, w))); kPad keeps the aspect ratio, scales it
// to the largest size that fits the box, centres it and fills the rest with white, the
// background of catalogue photographs (lookalike.models.resize 'stretch' / 'pad').
enum class Resize { kStretch, kPad };

// The per-model preprocessing: input size, resizing, and the per-channel (R, G, B) mean and std.
struct Normalization {
  int input_size = 224;  // the input's height
  int input_width = 0;   // its width; 0: input_size (a square)
  int height() const { return input_size; }
  int width() const { return input_width > 0 ? input_width : input_size; }
  Resize resize = Resize::kStretch;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float stddev[3] = {0.229f, 0.224f, 0.225f};
};

// Throws Error 22023 if the input size or width or a std is out of range, or a value is not finite.
void check_normalization(const Normalization &n);

class Preprocessor {
 public:
  explicit Preprocessor(const Normalization &n);
  int height() const { return height_; }
  int width() const { return width_; }
  size_t floats_per_image() const { return size_t(3) * size_t(height_) * size_t(width_); }
  // Writes the normalised RGB planes (C, H, W) of an 8-bit BGR image to dst.
  void operator()(const cv::Mat &bgr, float *dst) const;

 private:
  int height_, width_;
  Resize resize_;
  float lut_[3][256];  // lut_[c][v] = (float(v) / 255 - mean[c]) / stddev[c], in float32
};

// Sizes the thread pools of this process: LibTorch's intra-op pool (OpenMP) gets `threads`, at
// most the number of CPUs online;
// the inter-op pool is fixed at 1 (it can be set only once per process), OpenCV runs
// sequentially inside our own pool; OpenBLAS, when it is the system's BLAS, gets `threads` too
// if it is the OpenMP build (the same pool), one thread if the pthread build
// (size_openblas_threads). Cheap when nothing changes; creates no thread by itself.
void configure_threads(int threads);

// Flush-to-zero and denormals-are-zero in this thread and in the intra-op pool's threads while
// alive; each thread's previous MXCSR is restored by the destructor.
class FlushToZero {
 public:
  FlushToZero();
  ~FlushToZero();
  FlushToZero(const FlushToZero &) = delete;
  FlushToZero &operator=(const FlushToZero &) = delete;
};

// CPU time used by this process so far (every thread, user + system), in seconds: the benchmarks
// compare it with the reference's on a machine whose other load makes wall-clock time noisy.
double process_cpu_seconds();

// While alive, memory freed by tensors stays in this process's malloc heap for the next batch.
// With glibc's defaults a block above its mmap threshold (at most 32 MB) is unmapped when freed
// and free space above the trim threshold (at most 64 MB) at the top of the heap is given back,
// so every forward and backward pass faulted its activations in again: a batch of 32 at
// 224 x 224 has 51 MB tensors, and page faults took a quarter of the CPU time of a forward pass
// (docs/training.md, speed). The constructor raises both thresholds (256 MB and 512 MB); the
// destructor gives the free memory back (malloc_trim) and sets them to glibc's dynamic maxima
// (32 MB and 64 MB). Process-wide (malloc has no per-thread settings); nested scopes are counted
// and only the outermost one restores. Not thread-safe: create it on the backend's thread.
class TensorHeap {
 public:
  TensorHeap();
  ~TensorHeap();
  TensorHeap(const TensorHeap &) = delete;
  TensorHeap &operator=(const TensorHeap &) = delete;
};

// A loaded, inference-ready TorchScript model.
class Model {
 public:
  // Reads `path`, checks its sha256 against `expected_sha256` (unless empty: registration),
  // loads the TorchScript from those very bytes (no second read of the file), switches to eval
  // mode and optimises it for inference (freezing, oneDNN convolutions; falls back to the
  // plain module if the optimisation is refused). Errors: 58P01/58030 file, XX001 sha256
  // mismatch, 22023 not a TorchScript module, 54000 a file larger than max_bytes.
  static std::unique_ptr<Model> load(const std::string &path, const std::string &expected_sha256,
                                     int64_t max_bytes = kDefaultMaxModelBytes);
  // The same from TorchScript bytes held in memory (a model stored in the database); `path`
  // only names it in messages. XX001 if the bytes' sha256 differs from expected_sha256.
  static std::unique_ptr<Model> load_bytes(const std::string &path, std::vector<char> bytes,
                                           const std::string &expected_sha256);
  // Loads bytes already read and checked (checked_file_bytes, checked_stored_bytes), hashing
  // nothing again.
  static std::unique_ptr<Model> load_checked(CheckedModelBytes checked);
  ~Model();
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const std::string &path() const;
  const std::string &sha256() const;
  // Empty if the inference optimisation succeeded, else why it was refused.
  const std::string &optimize_error() const;

  // Forward pass over n preprocessed images (input: n x 3 x height x width floats, NCHW). Writes
  // the n L2-normalised output rows to out (n x D) and returns D. Errors: 38000 the model
  // failed or its output is not a 2-D floating tensor [n, D]; 22000 non-finite output.
  int forward(const float *input, int n, int height, int width, std::vector<float> &out);

  // Output dimension for n's input size (a forward pass on one mid-grey image).
  int probe_dims(const Normalization &n);

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An encoded image (JPEG, PNG, WebP, BMP bytes), not owned.
struct EncodedImage {
  const uint8_t *data = nullptr;
  size_t len = 0;
};

// An error about image `index` of a batch (the SQL side names the row).
class BatchImageError : public std::exception {
 public:
  BatchImageError(int index, std::exception_ptr cause) : index_(index), cause_(cause) {}
  int index() const { return index_; }
  std::exception_ptr cause() const { return cause_; }
  const char *what() const noexcept override { return "error in an image of a batch"; }

 private:
  int index_;
  std::exception_ptr cause_;
};

// A random crop of an image for training-time augmentation: between 60 % and 100 % of its
// area, the aspect ratio changed by a factor within [0.8, 1.25], at a random position. The same
// key gives the same crop (a seeded generator of its own: independent of threads and order).
cv::Mat random_crop(const cv::Mat &bgr, uint64_t key);

// Decodes (with the pixel limit) and preprocesses n images into `input` (resized to
// n x (1 + extra_views) x floats_per_image), in parallel over the intra-op pool. Image i fills
// items i * (1 + extra_views) + v: v = 0 the image itself, v >= 1 random_crop() of it with the
// key crop_key(key, i, v). If images fail, throws BatchImageError for the first failing index.
void prepare_batch(const Preprocessor &pre, const EncodedImage *images, int n, int64_t max_pixels,
                   std::vector<float> &input, int extra_views = 0, uint64_t key = 0);
uint64_t crop_key(uint64_t key, int64_t image, int view);

}  // namespace lookalike::model
