#include "model/runtime.hpp"

#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <sstream>

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <openssl/evp.h>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/csrc/jit/api/module.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>

#include "common/errors.hpp"
#include "image/decode.hpp"
#include "model/torchscript_load.hpp"

namespace lookalike::model {
namespace ss = lookalike::sqlstate;

// ---- files and hashes ------------------------------------------------------------------------

std::string sha256_hex(const void *data, size_t len) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), nullptr) != 1 || md_len != 32)
    throw Error(ss::kInternalError, "could not compute a sha256 digest (OpenSSL)");
  static const char hex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned i = 0; i < 32; ++i) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  return out;
}

std::string canonical_path(const std::string &path) {
  char *resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    int e = errno;
    throw Error(e == ENOENT ? ss::kUndefinedFile : kSqlstateIoError,
                "could not resolve model path \"" + path + "\": " + std::strerror(e));
  }
  std::string out(resolved);
  std::free(resolved);
  return out;
}

std::vector<char> read_file(const std::string &path, int64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat on the open descriptor then
  // refuses anything but a regular file (/dev/zero, a FIFO, a directory, a socket) before any
  // read, and the size is checked against the limit before any allocation.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    throw Error(e == ENOENT ? ss::kUndefinedFile : kSqlstateIoError,
                "could not open model file \"" + path + "\": " + std::strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    throw Error(kSqlstateIoError,
                "could not stat model file \"" + path + "\": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode))
    throw Error(kSqlstateIoError, "model file \"" + path + "\" is not a regular file",
                "A model is read from a regular file (not a directory, device, FIFO or socket).");
  if (st.st_size > max_bytes)
    throw Error(ss::kProgramLimitExceeded,
                "model file \"" + path + "\" is " + std::to_string(st.st_size) + " bytes",
                "lookalike.max_model_bytes is " + std::to_string(max_bytes) +
                    "; a superuser may raise it.");
  std::vector<char> buf(size_t(st.st_size));
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t got = ::read(fd, buf.data() + done, buf.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int e = errno;
      throw Error(kSqlstateIoError,
                  "could not read model file \"" + path + "\": " + std::strerror(e));
    }
    if (got == 0) break;  // the file shrank while read: the sha256 check will tell
    done += size_t(got);
  }
  buf.resize(done);
  return buf;
}

namespace {
CheckedModelBytes check_bytes(std::string name, const std::string &where, std::vector<char> bytes,
                              const std::string &expected_sha256, const char *what,
                              const char *hint) {
  std::string digest = sha256_hex(bytes.data(), bytes.size());
  if (!expected_sha256.empty() && digest != expected_sha256)
    throw Error(ss::kDataCorrupted, std::string(what) + " has changed since it was registered",
                "The sha256 of " + where + " is " + digest + "; the registration recorded " +
                    expected_sha256 + ".",
                hint);
  return CheckedModelBytes{std::move(name), std::move(bytes), std::move(digest)};
}
}  // namespace

CheckedModelBytes checked_file_bytes(const std::string &path, const std::string &expected_sha256,
                                     int64_t max_bytes) {
  return check_bytes(path, "\"" + path + "\"", read_file(path, max_bytes), expected_sha256,
                     "model file",
                     "Register the model again (lookalike.unregister_model, "
                     "lookalike.register_model) if the new file is intended.");
}

CheckedModelBytes checked_stored_bytes(const std::string &where, std::vector<char> bytes,
                                       const std::string &expected_sha256) {
  return check_bytes(where, where, std::move(bytes), expected_sha256, "stored model",
                     "Train or register the model again.");
}

// ---- preprocessing ---------------------------------------------------------------------------

void check_normalization(const Normalization &n) {
  auto check_pixels = [](const std::string &what, int v) {
    if (v < kMinInputSize || v > kMaxInputSize)
      throw Error(ss::kInvalidParameterValue,
                  "input " + what + " " + std::to_string(v) + " is out of range",
                  "The input " + what + " must be between " + std::to_string(kMinInputSize) +
                      " and " + std::to_string(kMaxInputSize) + " pixels.");
  };
  check_pixels("size", n.input_size);
  if (n.input_width != 0) check_pixels("width", n.input_width);  // 0: a square
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(n.mean[c]) || !std::isfinite(n.stddev[c]))
      throw Error(ss::kInvalidParameterValue, "mean and std must be finite numbers");
    if (!(n.stddev[c] > 0))
      throw Error(ss::kInvalidParameterValue, "every std value must be greater than zero");
  }
}

Preprocessor::Preprocessor(const Normalization &n)
    : height_(n.height()), width_(n.width()), resize_(n.resize) {
  check_normalization(n);
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      // The reference: img.astype(float32) / 255, then (img - mean) / std, all in float32.
      volatile float x = static_cast<float>(v) / 255.0f;
      volatile float y = x - n.mean[c];
      lut_[c][v] = y / n.stddev[c];
    }
  }
}

void Preprocessor::operator()(const cv::Mat &bgr, float *dst) const {
  if (bgr.type() != CV_8UC3)
    throw Error(ss::kInternalError, "preprocessing expects an 8-bit, 3-channel image");
  cv::Mat resized;
  // Resizing is per channel, so resizing BGR and then swapping to RGB equals the reference's
  // cvtColor(BGR2RGB) followed by resize, bit for bit.
  if (resize_ == Resize::kPad && int64_t(bgr.cols) * height_ != int64_t(bgr.rows) * width_) {
    // The largest size of the image's aspect ratio that fits the box (at least one pixel).
    const double scale = std::min(double(width_) / bgr.cols, double(height_) / bgr.rows);
    const int w = std::clamp(int(std::lround(bgr.cols * scale)), 1, width_);
    const int h = std::clamp(int(std::lround(bgr.rows * scale)), 1, height_);
    resized.create(height_, width_, CV_8UC3);
    resized.setTo(cv::Scalar(255, 255, 255));
    cv::Mat inner = resized(cv::Rect((width_ - w) / 2, (height_ - h) / 2, w, h));
    cv::resize(bgr, inner, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
  } else {
    cv::resize(bgr, resized, cv::Size(width_, height_), 0, 0, cv::INTER_LINEAR);
  }
  const size_t plane = size_t(height_) * size_t(width_);
  float *r = dst, *g = dst + plane, *b = dst + 2 * plane;
  size_t k = 0;
  for (int y = 0; y < height_; ++y) {
    const uint8_t *p = resized.ptr<uint8_t>(y);
    for (int x = 0; x < width_; ++x, p += 3, ++k) {
      b[k] = lut_[2][p[0]];
      g[k] = lut_[1][p[1]];
      r[k] = lut_[0][p[2]];
    }
  }
}

cv::Mat random_crop(const cv::Mat &bgr, uint64_t key) {
  std::mt19937_64 rng(key);
  auto uniform = [&](double lo, double hi) {
    return lo + (hi - lo) * double(rng() >> 11) * (1.0 / 9007199254740992.0);
  };
  const double area = uniform(0.6, 1.0);
  const double ratio = std::exp(uniform(std::log(0.8), std::log(1.25)));
  const int w = std::clamp(int(std::lround(bgr.cols * std::sqrt(area * ratio))), 1, bgr.cols);
  const int h = std::clamp(int(std::lround(bgr.rows * std::sqrt(area / ratio))), 1, bgr.rows);
  const int x = int(std::floor(uniform(0, 1) * (bgr.cols - w + 1)));
  const int y = int(std::floor(uniform(0, 1) * (bgr.rows - h + 1)));
  return bgr(cv::Rect(std::min(x, bgr.cols - w), std::min(y, bgr.rows - h), w, h));
}

uint64_t crop_key(uint64_t key, int64_t image, int view) {
  // splitmix64 of the three: neighbouring images and views get unrelated crops
  uint64_t z =
      key * 0x9E3779B97F4A7C15ULL + uint64_t(image) * 0xBF58476D1CE4E5B9ULL + uint64_t(view);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void prepare_batch(const Preprocessor &pre, const EncodedImage *images, int n, int64_t max_pixels,
                   std::vector<float> &input, int extra_views, uint64_t key) {
  const size_t per = pre.floats_per_image();
  const size_t views = size_t(1 + extra_views);
  input.resize(per * views * size_t(n));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::atomic<bool> any_error{false};
  float *base = input.data();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        cv::Mat bgr = image::decode_bgr(images[i].data, images[i].len, max_pixels);
        float *dst = base + per * views * size_t(i);
        pre(bgr, dst);
        for (int v = 1; v <= extra_views; ++v)
          pre(random_crop(bgr, crop_key(key, i, v)), dst + per * size_t(v));
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
        any_error = true;
      }
    }
  });
  if (any_error) {
    for (int i = 0; i < n; ++i)
      if (errors[size_t(i)]) throw BatchImageError(i, errors[size_t(i)]);
  }
}

// ---- threads and the FPU state ---------------------------------------------------------------

// LibTorch's matrix products go to the system's libblas.so.3. Where that is OpenBLAS
// (scripts/setup-debian.sh installs libopenblas0-openmp: sgemm about 13 times faster than
// Debian's reference BLAS), its thread count is set with LibTorch's (docs/model.md, "BLAS"):
// - the OpenMP build (openblas_get_parallel() == 2) runs in LibTorch's own OpenMP pool, started
//   on first use, so it gets `threads`, as LibTorch does;
// - the pthread build (== 1, libopenblas0-pthread) has a pool of its own, started when the
//   library loads, whose workers spin between calls (at 2 threads a batch of 4 images cost twice
//   the CPU time of 1); it runs in the calling thread only, inside LibTorch's pool, where
//   flush-to-zero is set as well.
// Only a library already loaded is looked up (RTLD_NOLOAD); the reference BLAS has no threads.
namespace {
void size_openblas_threads(int threads) {
  void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
  if (!lib) return;
  auto set = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
  auto parallel = reinterpret_cast<int (*)()>(dlsym(lib, "openblas_get_parallel"));
  if (set) set(parallel && parallel() == 2 ? threads : 1);
  dlclose(lib);  // drops the reference RTLD_NOLOAD took; the library stays loaded
}
}  // namespace

void configure_threads(int threads) {
  static int current = -1;
  // Never more threads than CPUs online: lookalike.threads allows up to 256, and threads beyond
  // the CPUs would only contend with each other and with the other backends.
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus > 0 && threads > cpus) threads = int(cpus);
  if (threads < 1) threads = 1;
  if (current == -1) {
    // Inter-op parallelism is not used (one model call at a time); the pool size can only be
    // set before its first use, once per process.
    try {
      at::set_num_interop_threads(1);
    } catch (const std::exception &) {
    }
    // OpenCV (TBB here) would start its own pool for resize; we parallelise over images in
    // the intra-op pool instead, so OpenCV runs sequentially.
    cv::setNumThreads(0);
  }
  if (threads != current) {
    at::set_num_threads(threads);
    size_openblas_threads(threads);
    current = threads;
  }
}

namespace {

// Flush-to-zero and denormals-are-zero for the duration of a forward pass, in this thread and
// in the intra-op pool's threads, restoring each thread's previous MXCSR afterwards.
constexpr unsigned kFtzDaz = 0x8040;
thread_local unsigned saved_mxcsr = 0;
thread_local bool ftz_active = false;

void ftz_on_this_thread() {
  if (ftz_active) return;
  saved_mxcsr = _mm_getcsr();
  _mm_setcsr(saved_mxcsr | kFtzDaz);
  ftz_active = true;
}
void ftz_off_this_thread() {
  if (!ftz_active) return;
  _mm_setcsr(saved_mxcsr);
  ftz_active = false;
}

}  // namespace

FlushToZero::FlushToZero() {
  ftz_on_this_thread();
  int64_t n = at::get_num_threads();
  if (n > 1) at::parallel_for(0, n, 1, [](int64_t, int64_t) { ftz_on_this_thread(); });
}

FlushToZero::~FlushToZero() {
  int64_t n = at::get_num_threads();
  try {
    if (n > 1) at::parallel_for(0, n, 1, [](int64_t, int64_t) { ftz_off_this_thread(); });
  } catch (...) {
  }
  ftz_off_this_thread();
}

double process_cpu_seconds() {
  timespec t{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) != 0) return 0;
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

namespace {

int tensor_heap_depth = 0;
constexpr int kTensorMmapThreshold = 256 << 20;
constexpr int kTensorTrimThreshold = 512 << 20;
constexpr int kDefaultMmapThreshold = 32 << 20;  // glibc's DEFAULT_MMAP_THRESHOLD_MAX (64-bit)
constexpr int kDefaultTrimThreshold = 64 << 20;  // twice that, as glibc's dynamic setting

}  // namespace

TensorHeap::TensorHeap() {
  if (tensor_heap_depth++ > 0) return;
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, kTensorMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTensorTrimThreshold);
#endif
}

TensorHeap::~TensorHeap() {
  if (--tensor_heap_depth > 0) return;
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, kDefaultMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kDefaultTrimThreshold);
  malloc_trim(0);
#endif
}

namespace {

std::string shape_text(const at::Tensor &t) {
  std::ostringstream s;
  s << t.sizes() << " " << t.scalar_type();
  return s.str();
}

// The bytes of a TorchScript archive, read in place by torch::jit::load's zip reader.
class BytesReadAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  BytesReadAdapter(const char *data, size_t size) : data_(data), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void *buf, size_t n, const char * /*what*/) const override {
    if (pos >= size_) return 0;
    n = std::min<uint64_t>(n, size_ - pos);
    std::memcpy(buf, data_ + pos, n);
    return n;
  }

 private:
  const char *data_;
  size_t size_;
};

}  // namespace

torch::jit::Module load_torchscript(const char *data, size_t size) {
  return torch::jit::load(std::make_shared<BytesReadAdapter>(data, size), c10::Device(c10::kCPU));
}

// ---- the model -------------------------------------------------------------------------------

struct Model::Impl {
  std::string path;
  std::string sha256;
  std::string optimize_error;
  torch::jit::Module module;
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
const std::string &Model::path() const { return impl_->path; }
const std::string &Model::sha256() const { return impl_->sha256; }
const std::string &Model::optimize_error() const { return impl_->optimize_error; }

std::unique_ptr<Model> Model::load(const std::string &path, const std::string &expected_sha256,
                                   int64_t max_bytes) {
  return load_checked(checked_file_bytes(path, expected_sha256, max_bytes));
}

std::unique_ptr<Model> Model::load_bytes(const std::string &path, std::vector<char> bytes,
                                         const std::string &expected_sha256) {
  return load_checked(checked_stored_bytes(path, std::move(bytes), expected_sha256));
}

std::unique_ptr<Model> Model::load_checked(CheckedModelBytes checked) {
  const std::string &path = checked.name;
  std::vector<char> &bytes = checked.bytes;
  std::unique_ptr<Model> m(new Model());
  m->impl_->path = path;
  m->impl_->sha256 = checked.sha256;
  torch::jit::Module module;
  try {
    module = load_torchscript(bytes.data(), bytes.size());
    bytes.clear();
    bytes.shrink_to_fit();
  } catch (const std::exception &e) {
    std::string what = e.what();
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    throw Error(ss::kInvalidParameterValue,
                "could not load \"" + path + "\" as a TorchScript module", what,
                "Export the model with torch.jit.trace or torch.jit.script and torch.jit.save "
                "(torch 1.13 or older).");
  }
  if (!module.find_method("forward"))
    throw Error(ss::kInvalidParameterValue,
                "TorchScript module \"" + path + "\" has no forward method");
  module.eval();
  try {
    // Freezing folds the weights and batch norms into the graph; optimize_for_inference then
    // moves convolutions to oneDNN. The plain module stays in use if this is refused.
    module = torch::jit::optimize_for_inference(module);
  } catch (const std::exception &e) {
    m->impl_->optimize_error = e.what();
    if (m->impl_->optimize_error.empty()) m->impl_->optimize_error = "unknown error";
  }
  m->impl_->module = std::move(module);
  return m;
}

int Model::forward(const float *input, int n, int height, int width, std::vector<float> &out) {
  at::Tensor y;
  {
    c10::InferenceMode guard;
    FlushToZero ftz;
    try {
      at::Tensor x = torch::from_blob(const_cast<float *>(input), {n, 3, height, width},
                                      torch::TensorOptions().dtype(torch::kFloat32));
      std::vector<torch::jit::IValue> args{x};
      torch::jit::IValue result = impl_->module.forward(args);
      if (!result.isTensor())
        throw Error(ss::kExternalRoutineException,
                    "model output is not a tensor but " + result.tagKind(),
                    "An image encoder must return one 2-D tensor [N, D].");
      y = result.toTensor();
      if (y.is_mkldnn()) y = y.to_dense();
      if (y.dim() != 2 || y.size(0) != n || !at::isFloatingType(y.scalar_type()))
        throw Error(ss::kExternalRoutineException, "model output is not a batch of vectors",
                    "For an input of " + std::to_string(n) + " images the model returned " +
                        shape_text(y) + "; an image encoder must return a floating tensor [N, D].");
      y = y.to(torch::kFloat32).contiguous();
    } catch (const Error &) {
      throw;
    } catch (const std::exception &e) {
      std::string what = e.what();
      std::string first = what.substr(0, what.find('\n'));
      if (first.size() > 300) first = first.substr(0, 300) + "...";
      if (what.size() > 1000) what = what.substr(0, 1000) + "...";
      throw Error(ss::kExternalRoutineException, "the model's forward pass failed: " + first, what);
    }
  }
  const int64_t d = y.size(1);
  if (d < 1) throw Error(ss::kExternalRoutineException, "model output has no components");
  const float *p = y.data_ptr<float>();
  out.resize(size_t(n) * size_t(d));
  for (int i = 0; i < n; ++i) {
    const float *row = p + size_t(i) * d;
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += double(row[j]) * row[j];
    if (!std::isfinite(s)) throw Error(ss::kDataException, "the model returned a non-finite value");
    float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.0f;
    float *o = out.data() + size_t(i) * d;
    for (int64_t j = 0; j < d; ++j) o[j] = row[j] * inv;
  }
  return int(d);
}

int Model::probe_dims(const Normalization &n) {
  check_normalization(n);
  // One mid-grey image (byte 128 in every channel), normalised like a real one.
  Preprocessor pre(n);
  cv::Mat grey(n.height(), n.width(), CV_8UC3, cv::Scalar(128, 128, 128));
  std::vector<float> input(pre.floats_per_image()), out;
  pre(grey, input.data());
  return forward(input.data(), 1, n.height(), n.width(), out);
}

}  // namespace lookalike::model
