// Pure graph logic of the lookalike_hnsw index; see hnsw_core.hpp.
#include "index/hnsw_core.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <queue>

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
#endif

int32_t dot_i8_scalar(const int8_t *a, const int8_t *b, int dim) {
  int32_t s = 0;
  for (int i = 0; i < dim; ++i) s += int32_t(a[i]) * b[i];
  return s;
}

}  // namespace

int32_t dot_i8(const int8_t *a, const int8_t *b, int dim) {
#ifdef LOOKALIKE_X86
  static const bool bw = __builtin_cpu_supports("avx512bw");
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512:
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

double lower_bound(Metric metric, const float *q, const int8_t *code, const CodeHeader &h,
                   int dim) {
  // In double over the dequantised vector; then the worst case of the quantisation error
  // (Cauchy-Schwarz / triangle inequality) and a margin for the float rounding of the operator.
  double qx = 0, qq = 0, l2 = 0;
  for (int i = 0; i < dim; ++i) {
    double r = static_cast<double>(h.scale) * code[i];
    qx += q[i] * r;
    qq += static_cast<double>(q[i]) * q[i];
    l2 += (q[i] - r) * (q[i] - r);
  }
  double qn = std::sqrt(qq), xn = std::sqrt(static_cast<double>(h.norm2));
  double margin = 1e-5 * (1.0 + qn * (xn + h.resid));
  switch (metric) {
    case Metric::kL2:
      return std::max(0.0, std::sqrt(l2) - h.resid - 1e-5 * (1.0 + qn + xn));
    case Metric::kInnerProduct:
      return -qx - qn * h.resid - margin;
    case Metric::kCosine:
    default:
      return std::max(0.0, 1.0 - qx - h.resid - 1e-5);
  }
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

Graph::Graph(int dim, Metric metric, int m, int ef_construction)
    : dim_(dim), metric_(metric), m_(m), ef_construction_(ef_construction) {
  scratch_.resize(dim);
}

size_t Graph::element_bytes(int dim, int m, int level) {
  size_t b = dim + sizeof(CodeHeader) + 1 + 4 * (2 * m + 1) + 4;
  if (level > 0) b += sizeof(std::vector<uint32_t>) + 4 * level * (m + 1);
  return b;
}

uint32_t *Graph::slot(uint32_t id, int layer) {
  if (layer == 0) return &layer0_[static_cast<size_t>(id) * (2 * m_ + 1)];
  return &upper_[id][static_cast<size_t>(layer - 1) * (m_ + 1)];
}

const uint32_t *Graph::slot(uint32_t id, int layer) const {
  return const_cast<Graph *>(this)->slot(id, layer);
}

const uint32_t *Graph::neighbors(uint32_t id, int layer, int *n) const {
  const uint32_t *s = slot(id, layer);
  *n = static_cast<int>(s[0]);
  return s + 1;
}

void Graph::search_layer(const float *q, float qnorm2, std::vector<Candidate> &entry, int ef,
                         int layer, std::vector<Candidate> &out) const {
  auto closer = [](const Candidate &a, const Candidate &b) { return a.dist > b.dist; };
  auto farther = [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(closer)> cand(closer);
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(farther)> best(farther);
  if (++epoch_ == 0) {
    std::fill(visited_.begin(), visited_.end(), 0);
    epoch_ = 1;
  }
  for (const Candidate &e : entry) {
    visited_[e.id] = epoch_;
    cand.push(e);
    best.push(e);
  }
  while (!cand.empty()) {
    Candidate c = cand.top();
    if (c.dist > best.top().dist && static_cast<int>(best.size()) >= ef) break;
    cand.pop();
    int n;
    const uint32_t *nb = neighbors(c.id, layer, &n);
    for (int i = 0; i < n; ++i) {
      uint32_t e = nb[i];
      if (visited_[e] == epoch_) continue;
      visited_[e] = epoch_;
      float d = node_distance(q, qnorm2, e);
      if (static_cast<int>(best.size()) < ef || d < best.top().dist) {
        cand.push({d, e});
        best.push({d, e});
        if (static_cast<int>(best.size()) > ef) best.pop();
      }
    }
  }
  out.clear();
  while (!best.empty()) {
    out.push_back(best.top());
    best.pop();
  }
  std::reverse(out.begin(), out.end());  // nearest first
}

void Graph::connect(uint32_t from, uint32_t to, float dist, int layer) {
  uint32_t *s = slot(from, layer);
  int cap = max_neighbors(m_, layer);
  int n = static_cast<int>(s[0]);
  if (n < cap) {
    s[1 + n] = to;
    s[0] = n + 1;
    return;
  }
  // Full: re-select among the current neighbours and the new one.
  std::vector<Candidate> c;
  c.reserve(n + 1);
  for (int i = 0; i < n; ++i)
    c.push_back(
        {pair_distance(metric_, code(from), hdrs_[from], code(s[1 + i]), hdrs_[s[1 + i]], dim_),
         s[1 + i]});
  c.push_back({dist, to});
  std::sort(c.begin(), c.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
  std::vector<float> d(c.size());
  std::vector<const int8_t *> codes(c.size());
  std::vector<const CodeHeader *> hs(c.size());
  for (size_t i = 0; i < c.size(); ++i) {
    d[i] = c[i].dist;
    codes[i] = code(c[i].id);
    hs[i] = &hdrs_[c[i].id];
  }
  std::vector<int> sel(c.size());
  std::unique_ptr<bool[]> flags(new bool[c.size()]);
  int k =
      select_neighbors(metric_, dim_, d.data(), codes.data(), hs.data(), static_cast<int>(c.size()),
                       cap, sel.data(), scratch_.data(), flags.get(), true);
  for (int i = 0; i < k; ++i) s[1 + i] = c[sel[i]].id;
  s[0] = k;
}

uint32_t Graph::add(const float *x, int level) {
  level = std::clamp(level, 0, kMaxLevel);
  uint32_t id = static_cast<uint32_t>(levels_.size());
  codes_.resize(codes_.size() + dim_);
  hdrs_.emplace_back();
  quantize(x, dim_, &codes_[static_cast<size_t>(id) * dim_], &hdrs_.back());
  levels_.push_back(static_cast<uint8_t>(level));
  layer0_.resize(layer0_.size() + 2 * m_ + 1, 0);
  upper_.emplace_back();
  if (level > 0) upper_.back().assign(static_cast<size_t>(level) * (m_ + 1), 0);
  visited_.push_back(0);
  memory_ += element_bytes(dim_, m_, level);

  if (entry_ < 0) {
    entry_ = static_cast<int>(id);
    max_level_ = level;
    return id;
  }
  float qnorm2 = kernels::dot(x, x, dim_);
  std::vector<Candidate> ep{{node_distance(x, qnorm2, entry_), static_cast<uint32_t>(entry_)}};
  std::vector<Candidate> w;
  for (int l = max_level_; l > level; --l) {
    search_layer(x, qnorm2, ep, 1, l, w);
    ep.assign(w.begin(), w.begin() + 1);
  }
  std::vector<float> d;
  std::vector<const int8_t *> codes;
  std::vector<const CodeHeader *> hs;
  std::vector<int> sel;
  for (int l = std::min(level, max_level_); l >= 0; --l) {
    search_layer(x, qnorm2, ep, ef_construction_, l, w);
    int cap = max_neighbors(m_, l);
    size_t n = w.size();
    d.resize(n);
    codes.resize(n);
    hs.resize(n);
    sel.resize(n);
    std::unique_ptr<bool[]> flags(new bool[n]);
    for (size_t i = 0; i < n; ++i) {
      d[i] = w[i].dist;
      codes[i] = code(w[i].id);
      hs[i] = &hdrs_[w[i].id];
    }
    int k = select_neighbors(metric_, dim_, d.data(), codes.data(), hs.data(), static_cast<int>(n),
                             cap, sel.data(), scratch_.data(), flags.get(), true);
    uint32_t *s = slot(id, l);
    for (int i = 0; i < k; ++i) s[1 + i] = w[sel[i]].id;
    s[0] = k;
    for (int i = 0; i < k; ++i) connect(w[sel[i]].id, id, w[sel[i]].dist, l);
    ep = w;
  }
  if (level > max_level_) {
    max_level_ = level;
    entry_ = static_cast<int>(id);
  }
  return id;
}

std::vector<Candidate> Graph::search(const float *q, int k, int ef) const {
  std::vector<Candidate> w;
  if (entry_ < 0) return w;
  float qnorm2 = kernels::dot(q, q, dim_);
  std::vector<Candidate> ep{{node_distance(q, qnorm2, entry_), static_cast<uint32_t>(entry_)}};
  for (int l = max_level_; l > 0; --l) {
    search_layer(q, qnorm2, ep, 1, l, w);
    ep.assign(w.begin(), w.begin() + 1);
  }
  search_layer(q, qnorm2, ep, std::max(ef, k), 0, w);
  if (static_cast<int>(w.size()) > k) w.resize(k);
  return w;
}

}  // namespace lookalike::hnsw
