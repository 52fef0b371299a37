// Distance kernels with run-time dispatch. The AVX2 and AVX-512 variants are compiled with GCC's
// target attribute, so the library itself needs no -m flags and runs on any x86-64 CPU (and the
// portable variant builds on any architecture).
#include "vector/kernels.hpp"

#include <cmath>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOOKALIKE_X86 1
#endif

namespace lookalike::kernels {
namespace {

// ---- portable ------------------------------------------------------------------------------
// Eight independent accumulators: lets the compiler use SSE registers and hides FMA latency.
float dot_scalar(const float *a, const float *b, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float l2_scalar(const float *a, const float *b, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      float d = a[i + j] - b[i + j];
      acc[j] += d * d;
    }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) {
    float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

// Every cosine variant is a template on kBB: with kBB false it skips b.b (cosine_parts_fixed:
// b.b is known), and computes a.b and a.a with exactly the operations of the full variant.

// Adds elements i..n-1 to the cosine parts in double: the tail of every variant.
template <bool kBB>
inline void add_cosine_tail(const float *a, const float *b, size_t i, size_t n, CosineParts &r) {
  for (; i < n; ++i) {
    const double x = a[i], y = b[i];
    r.ab += x * y;
    r.aa += x * x;
    if (kBB) r.bb += y * y;
  }
}

template <bool kBB>
CosineParts cosine_scalar(const float *a, const float *b, size_t n) {
  double ab[4] = {0, 0, 0, 0}, aa[4] = {0, 0, 0, 0}, bb[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) {
      const double x = a[i + j], y = b[i + j];
      ab[j] += x * y;
      aa[j] += x * x;
      if (kBB) bb[j] += y * y;
    }
  CosineParts r{(ab[0] + ab[1]) + (ab[2] + ab[3]), (aa[0] + aa[1]) + (aa[2] + aa[3]),
                (bb[0] + bb[1]) + (bb[2] + bb[3])};
  add_cosine_tail<kBB>(a, b, i, n, r);
  return r;
}

#ifdef LOOKALIKE_X86
// ---- AVX2 + FMA ----------------------------------------------------------------------------
__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, sums);
  sums = _mm_add_ss(sums, sh);
  return _mm_cvtss_f32(sums);
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float *a, const float *b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  if (i + 8 <= n) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    i += 8;
  }
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

__attribute__((target("avx2,fma"))) float l2_avx2(const float *a, const float *b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  if (i + 8 <= n) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    i += 8;
  }
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) {
    float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

__attribute__((target("avx2,fma"))) inline double hsum256d(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

// Eight floats a step, widened to two groups of four doubles.
template <bool kBB>
__attribute__((target("avx2,fma"))) CosineParts cosine_avx2(const float *a, const float *b,
                                                            size_t n) {
  __m256d ab0 = _mm256_setzero_pd(), aa0 = _mm256_setzero_pd(), bb0 = _mm256_setzero_pd();
  __m256d ab1 = _mm256_setzero_pd(), aa1 = _mm256_setzero_pd(), bb1 = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
    __m256d a0 = _mm256_cvtps_pd(_mm256_castps256_ps128(va));
    __m256d a1 = _mm256_cvtps_pd(_mm256_extractf128_ps(va, 1));
    __m256d b0 = _mm256_cvtps_pd(_mm256_castps256_ps128(vb));
    __m256d b1 = _mm256_cvtps_pd(_mm256_extractf128_ps(vb, 1));
    ab0 = _mm256_fmadd_pd(a0, b0, ab0);
    aa0 = _mm256_fmadd_pd(a0, a0, aa0);
    ab1 = _mm256_fmadd_pd(a1, b1, ab1);
    aa1 = _mm256_fmadd_pd(a1, a1, aa1);
    if (kBB) {
      bb0 = _mm256_fmadd_pd(b0, b0, bb0);
      bb1 = _mm256_fmadd_pd(b1, b1, bb1);
    }
  }
  CosineParts r{hsum256d(_mm256_add_pd(ab0, ab1)), hsum256d(_mm256_add_pd(aa0, aa1)),
                hsum256d(_mm256_add_pd(bb0, bb1))};
  add_cosine_tail<kBB>(a, b, i, n, r);
  return r;
}

// ---- AVX-512F ------------------------------------------------------------------------------
// (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized inside its own header.)
__attribute__((target("avx512f"))) inline float hsum512(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s0 = (t[0] + t[1]) + (t[2] + t[3]), s1 = (t[4] + t[5]) + (t[6] + t[7]);
  float s2 = (t[8] + t[9]) + (t[10] + t[11]), s3 = (t[12] + t[13]) + (t[14] + t[15]);
  return (s0 + s1) + (s2 + s3);
}

__attribute__((target("avx512f"))) float dot_avx512(const float *a, const float *b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  s0 = _mm512_add_ps(s0, s1);
  if (i < n) {  // masked tail: up to 31 floats
    size_t rest = n - i;
    if (rest >= 16) {
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
      i += 16;
      rest -= 16;
    }
    if (rest > 0) {
      __mmask16 m = static_cast<__mmask16>((1u << rest) - 1u);
      s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
  }
  return hsum512(s0);
}

__attribute__((target("avx512f"))) float l2_avx512(const float *a, const float *b, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
  }
  s0 = _mm512_add_ps(s0, s1);
  while (i < n) {
    size_t rest = n - i;
    __mmask16 m =
        rest >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << rest) - 1u);
    __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s0 = _mm512_fmadd_ps(d, d, s0);
    i += rest >= 16 ? 16 : rest;
  }
  return hsum512(s0);
}

__attribute__((target("avx512f"))) inline double hsum512d(__m512d v) {
  alignas(64) double t[8];
  _mm512_store_pd(t, v);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// Thirty-two floats a step, loaded as four halves of eight and widened to doubles, in four
// independent chains per sum (fewer chains left the loop waiting on FMA latency). The maskz form
// of the conversion: GCC 12 warns about the undefined source of the plain one.
template <bool kBB>
__attribute__((target("avx512f"))) CosineParts cosine_avx512(const float *a, const float *b,
                                                             size_t n) {
  __m512d ab[4], aa[4], bb[4];
  for (int j = 0; j < 4; ++j) ab[j] = aa[j] = bb[j] = _mm512_setzero_pd();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m512d x = _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + i + 8 * j));
      __m512d y = _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i + 8 * j));
      ab[j] = _mm512_fmadd_pd(x, y, ab[j]);
      aa[j] = _mm512_fmadd_pd(x, x, aa[j]);
      if (kBB) bb[j] = _mm512_fmadd_pd(y, y, bb[j]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    __m512d x = _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(a + i));
    __m512d y = _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(b + i));
    ab[0] = _mm512_fmadd_pd(x, y, ab[0]);
    aa[0] = _mm512_fmadd_pd(x, x, aa[0]);
    if (kBB) bb[0] = _mm512_fmadd_pd(y, y, bb[0]);
  }
  auto sum4 = [](const __m512d *v) __attribute__((target("avx512f"))) {
    return hsum512d(_mm512_add_pd(_mm512_add_pd(v[0], v[1]), _mm512_add_pd(v[2], v[3])));
  };
  CosineParts r{sum4(ab), sum4(aa), sum4(bb)};
  add_cosine_tail<kBB>(a, b, i, n, r);
  return r;
}
#endif  // LOOKALIKE_X86

struct Table {
  Isa isa;
  float (*dot)(const float *, const float *, size_t);
  float (*l2)(const float *, const float *, size_t);
  CosineParts (*cosine)(const float *, const float *, size_t);
  CosineParts (*cosine_fixed)(const float *, const float *, size_t);  // no b.b
};

Table table_for(Isa isa) {
#ifdef LOOKALIKE_X86
  if (isa == Isa::kAvx512)
    return {Isa::kAvx512, dot_avx512, l2_avx512, cosine_avx512<true>, cosine_avx512<false>};
  if (isa == Isa::kAvx2)
    return {Isa::kAvx2, dot_avx2, l2_avx2, cosine_avx2<true>, cosine_avx2<false>};
#endif
  (void)isa;
  return {Isa::kScalar, dot_scalar, l2_scalar, cosine_scalar<true>, cosine_scalar<false>};
}

Table &active() {
  static Table t = table_for(best_isa());
  return t;
}

}  // namespace

Isa best_isa() {
  if (cpu_supports(Isa::kAvx512)) return Isa::kAvx512;
  if (cpu_supports(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return true;
#ifdef LOOKALIKE_X86
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f");
#endif
    default:
      return false;
  }
}

float dot(const float *a, const float *b, size_t n) { return active().dot(a, b, n); }
float l2_squared(const float *a, const float *b, size_t n) { return active().l2(a, b, n); }
CosineParts cosine_parts(const float *a, const float *b, size_t n) {
  return active().cosine(a, b, n);
}

CosineParts cosine_parts_fixed(const float *a, const float *b, size_t n, double bb) {
  CosineParts p = active().cosine_fixed(a, b, n);
  p.bb = bb;
  return p;
}

double cosine_distance(const float *a, const float *b, size_t n) {
  return cosine_distance(cosine_parts(a, b, n));
}

double cosine_distance(const CosineParts &p) {
  double denom = std::sqrt(p.aa * p.bb);
  if (!(denom > 0.0) || !std::isfinite(denom)) return std::numeric_limits<double>::quiet_NaN();
  double sim = p.ab / denom;
  // Rounding can push |sim| slightly past 1.
  if (sim > 1.0) sim = 1.0;
  if (sim < -1.0) sim = -1.0;
  return 1.0 - sim;
}

Isa active_isa() { return active().isa; }

const char *isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512f";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "portable";
  }
}

bool force_isa(Isa isa) {
  if (!cpu_supports(isa)) return false;
  active() = table_for(isa);
  return true;
}

}  // namespace lookalike::kernels
