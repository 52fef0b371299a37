// The int8 codec of the lookalike_hnsw index; see hnsw_codec.hpp.
#include "index/hnsw_codec.hpp"

#include <algorithm>
#include <cmath>

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

}  // namespace lookalike::hnsw
