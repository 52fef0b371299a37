// Pure graph logic of the lookalike_hnsw index; see hnsw_core.hpp.
#include "index/hnsw_core.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>

#include "vector/kernels.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOOKALIKE_X86 1
#endif

namespace lookalike::hnsw {
namespace {

float dot_code_scalar(const float *q, const int8_t *c, int dim) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= dim; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += q[i + j] * static_cast<float>(c[i + j]);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < dim; ++i) s += q[i] * static_cast<float>(c[i]);
  return s;
}

#ifdef LOOKALIKE_X86
__attribute__((target("avx2,fma"))) float dot_code_avx2(const float *q, const int8_t *c, int dim) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= dim; i += 16) {
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(c + i));
    __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), c0, s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), c1, s1);
  }
  s0 = _mm256_add_ps(s0, s1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  float s = _mm_cvtss_f32(lo);
  for (; i < dim; ++i) s += q[i] * static_cast<float>(c[i]);
  return s;
}

__attribute__((target("avx512f"))) float dot_code_avx512(const float *q, const int8_t *c, int dim) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m512 c0 = _mm512_maskz_cvtepi32_ps(
        0xFFFF, _mm512_maskz_cvtepi8_epi32(
                    0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i *>(c + i))));
    __m512 c1 = _mm512_maskz_cvtepi32_ps(
        0xFFFF, _mm512_maskz_cvtepi8_epi32(
                    0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i *>(c + i + 16))));
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), c0, s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), c1, s1);
  }
  for (; i + 16 <= dim; i += 16) {
    __m512 c0 = _mm512_maskz_cvtepi32_ps(
        0xFFFF, _mm512_maskz_cvtepi8_epi32(
                    0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i *>(c + i))));
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), c0, s0);
  }
  s0 = _mm512_add_ps(s0, s1);
  alignas(64) float t[16];
  _mm512_store_ps(t, s0);
  float s = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7])) +
            (((t[8] + t[9]) + (t[10] + t[11])) + ((t[12] + t[13]) + (t[14] + t[15])));
  for (; i < dim; ++i) s += q[i] * static_cast<float>(c[i]);
  return s;
}

__attribute__((target("avx2"))) int32_t dot_i8_avx2(const int8_t *a, const int8_t *b, int dim) {
  __m256i acc = _mm256_setzero_si256();
  int i = 0;
  for (; i + 16 <= dim; i += 16) {
    __m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(a + i)));
    __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
  }
  alignas(32) int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i *>(t), acc);
  int32_t s = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  for (; i < dim; ++i) s += int32_t(a[i]) * b[i];
  return s;
}

__attribute__((target("avx512f,avx512bw"))) int32_t dot_i8_avx512(const int8_t *a, const int8_t *b,
                                                                  int dim) {
  __m512i acc = _mm512_setzero_si512();
  int i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m512i x = _mm512_maskz_cvtepi8_epi16(
        0xFFFFFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + i)));
    __m512i y = _mm512_maskz_cvtepi8_epi16(
        0xFFFFFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + i)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
  }
  alignas(64) int32_t t[16];
  _mm512_store_si512(t, acc);
  int32_t s = 0;
  for (int j = 0; j < 16; ++j) s += t[j];
  for (; i < dim; ++i) s += int32_t(a[i]) * b[i];
  return s;
}

// AVX512-VNNI: vpdpbusd multiplies unsigned by signed bytes, so a is offset by 128 (a ^ 0x80)
// and 128 * sum(b) is taken off again; 64 bytes per step, the tail with masked loads.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t dot_i8_vnni(const int8_t *a,
                                                                           const int8_t *b,
                                                                           int dim) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512(), accb = _mm512_setzero_si512();
  int i = 0;
  for (; i + 64 <= dim; i += 64) {
    __m512i x = _mm512_loadu_si512(a + i), y = _mm512_loadu_si512(b + i);
    acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(x, flip), y);
    accb = _mm512_dpbusd_epi32(accb, ones, y);
  }
  if (i < dim) {
    __mmask64 k = ~0ULL >> (64 - (dim - i));
    __m512i x = _mm512_maskz_loadu_epi8(k, a + i), y = _mm512_maskz_loadu_epi8(k, b + i);
    acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(x, flip), y);
    accb = _mm512_dpbusd_epi32(accb, ones, y);
  }
  // (_mm512_reduce_add_epi32 trips -Wuninitialized in GCC 12's headers.)
  alignas(64) int32_t t[16], u[16];
  _mm512_store_si512(t, acc);
  _mm512_store_si512(u, accb);
  int32_t s = 0, sb = 0;
  for (int j = 0; j < 16; ++j) {
    s += t[j];
    sb += u[j];
  }
  return s - 128 * sb;
}
#endif

int32_t dot_i8_scalar(const int8_t *a, const int8_t *b, int dim) {
  int32_t s = 0;
  for (int i = 0; i < dim; ++i) s += int32_t(a[i]) * b[i];
  return s;
}

}  // namespace

bool force_no_vnni = false;

int32_t dot_i8(const int8_t *a, const int8_t *b, int dim) {
#ifdef LOOKALIKE_X86
  static const bool bw = __builtin_cpu_supports("avx512bw");
  static const bool vnni = bw && __builtin_cpu_supports("avx512vnni");
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512:
      if (vnni && !force_no_vnni) return dot_i8_vnni(a, b, dim);
      if (bw) return dot_i8_avx512(a, b, dim);
      return dot_i8_avx2(a, b, dim);
    case kernels::Isa::kAvx2:
      return dot_i8_avx2(a, b, dim);
    default:
      break;
  }
#endif
  return dot_i8_scalar(a, b, dim);
}

float dot_code(const float *q, const int8_t *code, int dim) {
#ifdef LOOKALIKE_X86
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512:
      return dot_code_avx512(q, code, dim);
    case kernels::Isa::kAvx2:
      return dot_code_avx2(q, code, dim);
    default:
      break;
  }
#endif
  return dot_code_scalar(q, code, dim);
}

void quantize(const float *x, int dim, int8_t *code, CodeHeader *h) {
  float maxabs = 0;
  for (int i = 0; i < dim; ++i) maxabs = std::max(maxabs, std::fabs(x[i]));
  float scale = maxabs / 127.0f;
  double err = 0, n2 = 0;
  for (int i = 0; i < dim; ++i) {
    int v = scale > 0 ? static_cast<int>(std::lround(x[i] / scale)) : 0;
    v = std::clamp(v, -127, 127);
    code[i] = static_cast<int8_t>(v);
    double r = static_cast<double>(scale) * v;
    err += (x[i] - r) * (x[i] - r);
    n2 += r * r;
  }
  h->scale = scale;
  // Rounded up so that float rounding never makes it an underestimate.
  h->resid = static_cast<float>(std::sqrt(err) * 1.0001 + 1e-7);
  h->norm2 = static_cast<float>(n2);
}

void dequantize(const int8_t *code, const CodeHeader &h, int dim, float *out) {
  for (int i = 0; i < dim; ++i) out[i] = h.scale * static_cast<float>(code[i]);
}

void quantize_residual(const float *x, int dim, const int8_t *code, const CodeHeader &h,
                       int8_t *code2, CodeHeader *h2) {
  float maxabs = 0;
  for (int i = 0; i < dim; ++i)
    maxabs = std::max(maxabs, std::fabs(x[i] - h.scale * static_cast<float>(code[i])));
  float scale = maxabs / 127.0f;
  double err = 0, n2 = 0;
  for (int i = 0; i < dim; ++i) {
    double r1 = static_cast<double>(h.scale) * code[i];
    double r = static_cast<double>(x[i]) - r1;
    int v = scale > 0 ? static_cast<int>(std::lround(r / scale)) : 0;
    v = std::clamp(v, -127, 127);
    code2[i] = static_cast<int8_t>(v);
    double y = r1 + static_cast<double>(scale) * v;
    err += (x[i] - y) * (x[i] - y);
    n2 += y * y;
  }
  h2->scale = scale;
  h2->resid = static_cast<float>(std::sqrt(err) * 1.0001 + 1e-9);
  h2->norm2 = static_cast<float>(n2);
}

namespace {

// The bounds of lower_bound*, given q.x^ (qx), an upper bound of its float error (eqx), |q|^2
// (qq, float), the reconstruction's |x^|^2 and the bound of |x - x^| (resid).
double bound_from(Metric metric, double qx, double eqx, double qq, double g, double norm2,
                  double resid) {
  double xn = std::sqrt(norm2) * (1.0 + 1e-6);
  double qn = std::sqrt(qq * (1.0 + g));
  double margin = 1e-5 * (1.0 + qn * (xn + resid));
  switch (metric) {
    case Metric::kL2: {
      double l2 = qq - 2.0 * qx + norm2;
      double err = g * qq + 2.0 * eqx + g * norm2;
      return std::max(0.0, std::sqrt(std::max(0.0, l2 - err)) - resid - 1e-5 * (1.0 + qn + xn));
    }
    case Metric::kInnerProduct:
      return -qx - eqx - qn * resid - margin;
    case Metric::kCosine:
    default:
      return std::max(0.0, 1.0 - qx - eqx - resid - 1e-5);
  }
}

}  // namespace

double lower_bound(Metric metric, const float *q, const int8_t *code, const CodeHeader &h,
                   int dim) {
  // q.x^ and |q|^2 with the SIMD float kernels, then bounds: a float sum of dim products is off
  // by at most about dim * 2^-24 * sum|q_i x^_i| <= g |q| |x^| (Cauchy-Schwarz; g doubled for the
  // int8 -> float conversion and the scale), the quantisation error by Cauchy-Schwarz / the
  // triangle inequality (resid), and a margin for the float rounding of the SQL operator.
  const double g = 2.0 * (dim + 4) * 5.9604645e-8;
  double qx = static_cast<double>(h.scale) * dot_code(q, code, dim);
  double qq = kernels::dot(q, q, dim);
  double qn = std::sqrt(qq * (1.0 + g));
  double eqx = g * qn * std::sqrt(static_cast<double>(h.norm2)) * (1.0 + 1e-6);
  return bound_from(metric, qx, eqx, qq, g, h.norm2, h.resid);
}

double lower_bound_refined(Metric metric, const float *q, const int8_t *code, const CodeHeader &h,
                           const int8_t *code2, const CodeHeader &h2, int dim) {
  // As lower_bound, with q.x^ = scale * q.code + scale2 * q.code2; the second sum's terms are
  // bounded by |q| |r^| <= |q| (resid + resid2) (r^ = the reconstructed quantisation error).
  const double g = 2.0 * (dim + 4) * 5.9604645e-8;
  double qx = static_cast<double>(h.scale) * dot_code(q, code, dim) +
              static_cast<double>(h2.scale) * dot_code(q, code2, dim);
  double qq = kernels::dot(q, q, dim);
  double qn = std::sqrt(qq * (1.0 + g));
  double eqx = g * qn *
               (std::sqrt(static_cast<double>(h.norm2)) * (1.0 + 1e-6) + h.resid + h2.resid) *
               1.0001;
  return bound_from(metric, qx, eqx, qq, g, h2.norm2, h2.resid);
}

int random_level(double u, int m) {
  if (u <= 0) u = 1e-300;
  double l = -std::log(u) / std::log(static_cast<double>(std::max(m, 2)));
  int level = static_cast<int>(std::floor(l));
  return std::clamp(level, 0, kMaxLevel);
}

int select_neighbors(Metric metric, int dim, const float *dist, const int8_t *const *codes,
                     const CodeHeader *const *hdrs, int n, int max_sel, int *out, float *scratch,
                     bool *kept_flags, bool fill) {
  int nsel = 0;
  for (int i = 0; i < n; ++i) kept_flags[i] = false;
  (void)scratch;
  for (int i = 0; i < n && nsel < max_sel; ++i) {
    bool good = true;
    for (int s = 0; s < nsel; ++s) {
      int j = out[s];
      float d = pair_distance(metric, codes[i], *hdrs[i], codes[j], *hdrs[j], dim);
      if (d < dist[i]) {
        good = false;
        break;
      }
    }
    if (good) {
      out[nsel++] = i;
      kept_flags[i] = true;
    }
  }
  // Fill with the nearest discarded candidates.
  for (int i = 0; fill && i < n && nsel < max_sel; ++i)
    if (!kept_flags[i]) {
      out[nsel++] = i;
      kept_flags[i] = true;
    }
  return nsel;
}

// ---- in-memory graph -----------------------------------------------------------------------

// Scratch of one thread that links elements (or of search()).
struct Graph::Context {
  std::vector<uint32_t> visited;  // epoch tags, one per element
  uint32_t epoch = 0;
  std::vector<Candidate> cand, best;   // search_layer's heaps
  std::vector<uint32_t> nb;            // a neighbour list copied under its element's lock
  std::vector<uint32_t> todo;          // search_layer: neighbours to measure
  std::vector<Candidate> ep, w, kept;  // link(): entry candidates, results, kept
  std::vector<Candidate> conn;         // connect(): candidates
  std::vector<float> dist_buf;         // select(): scratch
  std::vector<const int8_t *> code_buf;
  std::vector<const CodeHeader *> hdr_buf;
  std::vector<int> sel_buf;
  std::vector<float> scratch;
  std::unique_ptr<bool[]> flag_buf;
  size_t flag_cap = 0;
};

namespace {

// A one-byte spin lock per element (GCC atomics on plain bytes, so the array can grow between
// the parallel phases). Held only while a neighbour list is copied or rewritten.
class NodeLock {
 public:
  explicit NodeLock(uint8_t *b) : b_(b) {
    while (__atomic_test_and_set(b_, __ATOMIC_ACQUIRE)) {
      while (__atomic_load_n(b_, __ATOMIC_RELAXED)) {
#ifdef LOOKALIKE_X86
        _mm_pause();
#endif
      }
    }
  }
  ~NodeLock() { __atomic_clear(b_, __ATOMIC_RELEASE); }
  NodeLock(const NodeLock &) = delete;
  NodeLock &operator=(const NodeLock &) = delete;

 private:
  uint8_t *b_;
};

// Blocks every signal in the threads created while it lives (they inherit the mask), so that
// the process's signal handlers only ever run on the calling thread.
class BlockSignals {
 public:
  BlockSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~BlockSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockSignals(const BlockSignals &) = delete;
  BlockSignals &operator=(const BlockSignals &) = delete;

 private:
  sigset_t old_;
};

}  // namespace

Graph::Graph(int dim, Metric metric, int m, int ef_construction)
    : dim_(dim), metric_(metric), m_(m), ef_construction_(ef_construction) {}

Graph::~Graph() = default;

size_t Graph::element_bytes(int dim, int m, int level) {
  // codes, levels, lock, layer-0 ids and distances, and one visited tag per linking thread
  // (counted once here; link_pending() accounts for the others).
  size_t b = 2 * (dim + sizeof(CodeHeader)) + 1 + 1 + 4 * (2 * m + 1) + 4 * 2 * m + 4;
  b += 2 * sizeof(std::vector<uint32_t>);
  if (level > 0) b += 4 * level * (m + 1) + 4 * level * m;
  return b;
}

size_t Graph::memory_bytes() const {
  return memory_ + 4 * size() * (ctx_.size() > 1 ? ctx_.size() - 1 : 0);
}

uint32_t *Graph::slot(uint32_t id, int layer) {
  if (layer == 0) return &layer0_[static_cast<size_t>(id) * (2 * m_ + 1)];
  return &upper_[id][static_cast<size_t>(layer - 1) * (m_ + 1)];
}

float *Graph::slot_dist(uint32_t id, int layer) {
  if (layer == 0) return &layer0_dist_[static_cast<size_t>(id) * 2 * m_];
  return &upper_dist_[id][static_cast<size_t>(layer - 1) * m_];
}

const uint32_t *Graph::slot(uint32_t id, int layer) const {
  return const_cast<Graph *>(this)->slot(id, layer);
}

const uint32_t *Graph::neighbors(uint32_t id, int layer, int *n) const {
  const uint32_t *s = slot(id, layer);
  *n = static_cast<int>(s[0]);
  return s + 1;
}

void Graph::prepare(Context &c) const {
  if (c.visited.size() < size()) c.visited.resize(size(), 0);
  c.scratch.resize(dim_);
  c.nb.resize(2 * m_ + 1);
  c.todo.resize(2 * m_ + 1);
}

template <typename Dist>
void Graph::search_layer(Context &ctx, Dist dist, const std::vector<Candidate> &entry, int ef,
                         int layer, std::vector<Candidate> &out) const {
  // cand: min-heap (nearest on top), best: max-heap (farthest on top), over reused buffers.
  auto closer = [](const Candidate &a, const Candidate &b) { return a.dist > b.dist; };
  auto farther = [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; };
  std::vector<Candidate> &cand = ctx.cand, &best = ctx.best;
  std::vector<uint32_t> &visited = ctx.visited;
  cand.clear();
  best.clear();
  if (++ctx.epoch == 0) {
    std::fill(visited.begin(), visited.end(), 0);
    ctx.epoch = 1;
  }
  const uint32_t epoch = ctx.epoch;
  for (const Candidate &e : entry) {
    if (visited[e.id] == epoch) continue;
    visited[e.id] = epoch;
    cand.push_back(e);
    std::push_heap(cand.begin(), cand.end(), closer);
    best.push_back(e);
    std::push_heap(best.begin(), best.end(), farther);
  }
  while (static_cast<int>(best.size()) > ef) {
    std::pop_heap(best.begin(), best.end(), farther);
    best.pop_back();
  }
  uint32_t *nb = ctx.nb.data(), *todo = ctx.todo.data();
  while (!cand.empty()) {
    Candidate c = cand.front();
    if (static_cast<int>(best.size()) >= ef && c.dist > best.front().dist) break;
    std::pop_heap(cand.begin(), cand.end(), closer);
    cand.pop_back();
    // Copy the list under the element's lock (another thread may be rewriting it).
    int n;
    {
      NodeLock lock(&locks_[c.id]);
      const uint32_t *s = slot(c.id, layer);
      n = static_cast<int>(s[0]);
      std::copy(s + 1, s + 1 + n, nb);
    }
    // Mark the unvisited neighbours and prefetch their codes, then compute the distances.
    int nt = 0;
    for (int i = 0; i < n; ++i) {
      uint32_t e = nb[i];
      if (visited[e] == epoch) continue;
      visited[e] = epoch;
      todo[nt++] = e;
      const char *p = reinterpret_cast<const char *>(code(e));
      for (int off = 0; off < dim_; off += 64) __builtin_prefetch(p + off);
    }
    for (int i = 0; i < nt; ++i) {
      uint32_t e = todo[i];
      float d = dist(e);
      if (static_cast<int>(best.size()) < ef || d < best.front().dist) {
        cand.push_back({d, e});
        std::push_heap(cand.begin(), cand.end(), closer);
        best.push_back({d, e});
        std::push_heap(best.begin(), best.end(), farther);
        if (static_cast<int>(best.size()) > ef) {
          std::pop_heap(best.begin(), best.end(), farther);
          best.pop_back();
        }
      }
    }
  }
  out.assign(best.begin(), best.end());
  std::sort(out.begin(), out.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
}

void Graph::connect(Context &ctx, uint32_t from, uint32_t to, float dist, int layer) {
  if (from == to) return;
  NodeLock lock(&locks_[from]);
  uint32_t *s = slot(from, layer);
  float *sd = slot_dist(from, layer);
  int cap = max_neighbors(m_, layer);
  int n = static_cast<int>(s[0]);
  for (int i = 0; i < n; ++i)
    if (s[1 + i] == to) return;
  if (n < cap) {
    s[1 + n] = to;
    sd[n] = dist;
    s[0] = n + 1;
    return;
  }
  // Full: re-select among the current neighbours (their distances are kept) and the new one. The
  // heuristic without fill usually keeps far fewer than cap, so the next links are appended
  // without another selection.
  std::vector<Candidate> &c = ctx.conn;
  c.clear();
  for (int i = 0; i < n; ++i) c.push_back({sd[i], s[1 + i]});
  c.push_back({dist, to});
  store_selected(ctx, c, cap, s, sd);
}

void Graph::store_selected(Context &ctx, std::vector<Candidate> &c, int cap, uint32_t *s,
                           float *sd) const {
  std::sort(c.begin(), c.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
  int k = select(ctx, c, cap);
  for (int i = 0; i < k; ++i) {
    s[1 + i] = c[ctx.sel_buf[i]].id;
    sd[i] = c[ctx.sel_buf[i]].dist;
  }
  s[0] = k;
}

int Graph::select(Context &ctx, const std::vector<Candidate> &c, int cap) const {
  size_t n = c.size();
  ctx.dist_buf.resize(n);
  ctx.code_buf.resize(n);
  ctx.hdr_buf.resize(n);
  ctx.sel_buf.resize(n);
  if (ctx.flag_cap < n) {
    ctx.flag_buf.reset(new bool[n]);
    ctx.flag_cap = n;
  }
  for (size_t i = 0; i < n; ++i) {
    ctx.dist_buf[i] = c[i].dist;
    ctx.code_buf[i] = code(c[i].id);
    ctx.hdr_buf[i] = &hdrs_[c[i].id];
  }
  return select_neighbors(metric_, dim_, ctx.dist_buf.data(), ctx.code_buf.data(),
                          ctx.hdr_buf.data(), static_cast<int>(n), cap, ctx.sel_buf.data(),
                          ctx.scratch.data(), ctx.flag_buf.get(), false);
}

uint32_t Graph::append(const float *x, int level) {
  level = std::clamp(level, 0, kMaxLevel);
  uint32_t id = static_cast<uint32_t>(levels_.size());
  codes_.resize(codes_.size() + dim_);
  hdrs_.emplace_back();
  quantize(x, dim_, &codes_[static_cast<size_t>(id) * dim_], &hdrs_.back());
  codes2_.resize(codes2_.size() + dim_);
  hdrs2_.emplace_back();
  quantize_residual(x, dim_, &codes_[static_cast<size_t>(id) * dim_], hdrs_.back(),
                    &codes2_[static_cast<size_t>(id) * dim_], &hdrs2_.back());
  levels_.push_back(static_cast<uint8_t>(level));
  locks_.push_back(0);
  layer0_.resize(layer0_.size() + 2 * m_ + 1, 0);
  layer0_dist_.resize(layer0_dist_.size() + 2 * m_, 0.0f);
  upper_.emplace_back();
  upper_dist_.emplace_back();
  if (level > 0) {
    upper_.back().assign(static_cast<size_t>(level) * (m_ + 1), 0);
    upper_dist_.back().assign(static_cast<size_t>(level) * m_, 0.0f);
  }
  memory_ += element_bytes(dim_, m_, level);
  return id;
}

void Graph::link(uint32_t id, Context &ctx) {
  const int level = levels_[id];
  // The entry point; an element above the top layer keeps the lock until it is the new entry
  // point (rare: one in m^level elements), so two of them never race.
  std::unique_lock<std::mutex> top(entry_mu_);
  const int max_level = max_level_;
  const int entry = entry_;
  if (entry < 0) {
    entry_ = static_cast<int>(id);
    max_level_ = level;
    return;
  }
  if (level <= max_level) top.unlock();
  // The build compares the new element's code with the others' (int8 x int8, the same pair
  // distances as the neighbour selection): faster than float x int8 and as good for the graph.
  const int8_t *xc = code(id);
  const CodeHeader xh = hdrs_[id];
  auto dist = [&](uint32_t e) { return pair_distance(metric_, xc, xh, code(e), hdrs_[e], dim_); };
  std::vector<Candidate> &ep = ctx.ep, &w = ctx.w, &kept = ctx.kept;
  ep.assign(1, Candidate{dist(static_cast<uint32_t>(entry)), static_cast<uint32_t>(entry)});
  for (int l = max_level; l > level; --l) {
    search_layer(ctx, dist, ep, 1, l, w);
    ep.assign(w.begin(), w.begin() + 1);
  }
  for (int l = std::min(level, max_level); l >= 0; --l) {
    search_layer(ctx, dist, ep, ef_construction_, l, w);
    // With several threads, id can already be on this layer: another thread found it on the
    // layer above and linked to it here, so the search can reach id itself. It is never its
    // own neighbour; should nothing else be left, the entry candidates (id-free) stand in.
    w.erase(std::remove_if(w.begin(), w.end(), [id](const Candidate &x) { return x.id == id; }),
            w.end());
    if (w.empty()) w = ep;
    const int cap = max_neighbors(m_, l);
    int k = select(ctx, w, cap);
    kept.clear();
    for (int i = 0; i < k; ++i) kept.push_back(w[ctx.sel_buf[i]]);
    {
      NodeLock lock(&locks_[id]);
      uint32_t *s = slot(id, l);
      float *sd = slot_dist(id, l);
      int n0 = static_cast<int>(s[0]);
      if (n0 > 0) {
        // Another thread linked to id on this layer already (it started its search from id,
        // found on the layer above): its links join the candidates.
        std::vector<Candidate> &c = ctx.conn;
        c.assign(kept.begin(), kept.end());
        for (int i = 0; i < n0; ++i)
          if (std::none_of(kept.begin(), kept.end(),
                           [&](const Candidate &x) { return x.id == s[1 + i]; }))
            c.push_back({sd[i], s[1 + i]});
        store_selected(ctx, c, cap, s, sd);
      } else {
        for (int i = 0; i < k; ++i) {
          s[1 + i] = kept[i].id;
          sd[i] = kept[i].dist;
        }
        s[0] = k;
      }
    }
    for (const Candidate &e : kept) connect(ctx, e.id, id, e.dist, l);
    ep = w;
  }
  if (level > max_level) {
    max_level_ = level;
    entry_ = static_cast<int>(id);
  }
}

uint32_t Graph::add(const float *x, int level) {
  uint32_t id = append(x, level);
  link_pending(1, nullptr);
  return id;
}

template <typename Fn>
size_t Graph::run_threads(size_t begin, size_t end, int threads,
                          const std::function<bool(size_t)> &poll, Fn fn) {
  if (begin >= end) return 0;
  threads = std::max(1, std::min<int>(threads, static_cast<int>(end - begin)));
  while (static_cast<int>(ctx_.size()) < threads) ctx_.push_back(std::make_unique<Context>());
  for (int t = 0; t < threads; ++t) prepare(*ctx_[t]);
  std::atomic<size_t> next{begin}, done{0};
  std::atomic<bool> stop{false};
  std::mutex err_mu;
  std::exception_ptr err;
  auto work = [&](Context &c, bool caller) {
    try {
      while (!stop.load(std::memory_order_relaxed)) {
        size_t id = next.fetch_add(1);
        if (id >= end) break;
        fn(static_cast<uint32_t>(id), c);
        size_t d = done.fetch_add(1) + 1;
        if (caller && poll && !poll(d)) stop = true;
      }
    } catch (...) {
      std::lock_guard<std::mutex> g(err_mu);
      if (!err) err = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> pool;
  if (threads > 1) {
    BlockSignals blocked;
    try {
      for (int t = 1; t < threads; ++t) pool.emplace_back(work, std::ref(*ctx_[t]), false);
    } catch (...) {
      // Could not start a thread (std::system_error): the others and this one do the work.
    }
  }
  work(*ctx_[0], true);
  for (std::thread &t : pool) t.join();
  if (err) std::rethrow_exception(err);
  return std::min(next.load(), end) - begin;
}

size_t Graph::link_pending(int threads, const std::function<bool(size_t)> &poll) {
  // On an exception the graph is left half-linked: the caller discards it.
  size_t linked =
      run_threads(linked_, size(), threads, poll, [this](uint32_t id, Context &c) { link(id, c); });
  linked_ += linked;
  return linked;
}

size_t Graph::refine(size_t begin, size_t end, int threads,
                     const std::function<bool(size_t)> &poll) {
  return run_threads(begin, std::min(end, linked_), threads, poll,
                     [this](uint32_t id, Context &c) { relink(id, c); });
}

void Graph::relink(uint32_t id, Context &ctx) {
  const int8_t *xc = code(id);
  const CodeHeader xh = hdrs_[id];
  auto dist = [&](uint32_t e) { return pair_distance(metric_, xc, xh, code(e), hdrs_[e], dim_); };
  int entry, max_level;
  {
    std::lock_guard<std::mutex> top(entry_mu_);
    entry = entry_;
    max_level = max_level_;
  }
  if (entry < 0 || static_cast<uint32_t>(entry) == id) return;
  std::vector<Candidate> &ep = ctx.ep, &w = ctx.w, &kept = ctx.kept;
  ep.assign(1, Candidate{dist(static_cast<uint32_t>(entry)), static_cast<uint32_t>(entry)});
  for (int l = max_level; l > 0; --l) {
    search_layer(ctx, dist, ep, 1, l, w);
    ep.assign(w.begin(), w.begin() + 1);
  }
  search_layer(ctx, dist, ep, ef_construction_, 0, w);
  const int cap = max_neighbors(m_, 0);
  std::vector<Candidate> &c = ctx.conn;
  c.clear();
  for (const Candidate &x : w)
    if (x.id != id) c.push_back(x);
  {
    NodeLock lock(&locks_[id]);
    const uint32_t *s = slot(id, 0);
    const float *sd = slot_dist(id, 0);
    for (uint32_t i = 0; i < s[0]; ++i)
      if (std::none_of(c.begin(), c.end(), [&](const Candidate &x) { return x.id == s[1 + i]; }))
        c.push_back({sd[i], s[1 + i]});
  }
  std::sort(c.begin(), c.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
  int k = select(ctx, c, cap);
  kept.clear();
  for (int i = 0; i < k; ++i) kept.push_back(c[ctx.sel_buf[i]]);
  {
    NodeLock lock(&locks_[id]);
    uint32_t *s = slot(id, 0);
    float *sd = slot_dist(id, 0);
    for (int i = 0; i < k; ++i) {
      s[1 + i] = kept[i].id;
      sd[i] = kept[i].dist;
    }
    s[0] = k;
  }
  for (const Candidate &e : kept) connect(ctx, e.id, id, e.dist, 0);
}

size_t Graph::connect_unreachable() {
  const size_t n = size();
  if (n < 2 || linked_ < n || entry_ < 0) return 0;
  const int cap = max_neighbors(m_, 0);
  std::vector<uint32_t> indeg(n, 0);
  for (size_t x = 0; x < n; ++x) {
    const uint32_t *s = slot(static_cast<uint32_t>(x), 0);
    for (uint32_t i = 0; i < s[0]; ++i) indeg[s[1 + i]]++;
  }
  std::vector<uint8_t> reached(n, 0);
  std::vector<uint32_t> stack;
  auto flood = [&](uint32_t from) {
    reached[from] = 1;
    stack.assign(1, from);
    while (!stack.empty()) {
      uint32_t x = stack.back();
      stack.pop_back();
      const uint32_t *s = slot(x, 0);
      for (uint32_t i = 0; i < s[0]; ++i)
        if (!reached[s[1 + i]]) {
          reached[s[1 + i]] = 1;
          stack.push_back(s[1 + i]);
        }
    }
  };
  size_t added = 0;
  // A replaced link may cut off what only an unreached element linked to: each pass starts from
  // a fresh flood from the entry point (in practice the second pass finds nothing).
  for (int pass = 0; pass < 8; ++pass) {
    std::fill(reached.begin(), reached.end(), 0);
    flood(static_cast<uint32_t>(entry_));
    bool progress = false;
    for (size_t xi = 0; xi < n; ++xi) {
      uint32_t x = static_cast<uint32_t>(xi);
      if (reached[x]) continue;
      // x's own neighbours that are reachable, nearest first: the first that can take a link
      // to x without orphaning another element gets it.
      const uint32_t *xs = slot(x, 0);
      const float *xd = slot_dist(x, 0);
      std::vector<Candidate> ys;
      for (uint32_t i = 0; i < xs[0]; ++i)
        if (reached[xs[1 + i]]) ys.push_back({xd[i], xs[1 + i]});
      std::sort(ys.begin(), ys.end(),
                [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
      for (const Candidate &y : ys) {
        uint32_t *s = slot(y.id, 0);
        float *sd = slot_dist(y.id, 0);
        int k = static_cast<int>(s[0]);
        if (k < cap) {
          s[1 + k] = x;
          sd[k] = y.dist;
          s[0] = k + 1;
        } else {
          // Replace y's farthest neighbour that other elements also link to.
          int far = -1;
          for (int i = 0; i < k; ++i)
            if (indeg[s[1 + i]] > 1 && (far < 0 || sd[i] > sd[far])) far = i;
          if (far < 0) continue;
          indeg[s[1 + far]]--;
          s[1 + far] = x;
          sd[far] = y.dist;
        }
        indeg[x]++;
        added++;
        flood(x);
        progress = true;
        break;
      }
    }
    if (!progress) break;
  }
  return added;
}

std::vector<Candidate> Graph::search(const float *q, int k, int ef) const {
  std::vector<Candidate> w;
  if (entry_ < 0) return w;
  if (!search_ctx_) search_ctx_ = std::make_unique<Context>();
  Context &ctx = *search_ctx_;
  prepare(ctx);
  float qnorm2 = kernels::dot(q, q, dim_);
  auto dist = [&](uint32_t e) { return node_distance(q, qnorm2, e); };
  ctx.ep.assign(1, Candidate{dist(static_cast<uint32_t>(entry_)), static_cast<uint32_t>(entry_)});
  for (int l = max_level_; l > 0; --l) {
    search_layer(ctx, dist, ctx.ep, 1, l, w);
    ctx.ep.assign(w.begin(), w.begin() + 1);
  }
  search_layer(ctx, dist, ctx.ep, std::max(ef, k), 0, w);
  if (static_cast<int>(w.size()) > k) w.resize(k);
  return w;
}

}  // namespace lookalike::hnsw
