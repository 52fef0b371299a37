// The codec of the lookalike_hnsw index (pure C++): the int8 scalar quantisation that the graph
// is traversed with, distances between a float query and a code (SIMD), and the exact lower
// bounds that let the executor re-rank candidates with the true distance.
//
// Distances inside the graph are "graph distances": smaller is closer, and they order points the
// same way as the SQL operator of the metric:
//   L2      squared Euclidean distance           (operator <->, which returns the root)
//   IP      negative inner product               (operator <#>)
//   cosine  negative inner product of unit vectors (operator <=>, vectors normalised on the way in)
#pragma once

#include <cstddef>
#include <cstdint>

#include "vector/metric.hpp"

namespace lookalike::hnsw {

// Per-element parameters of the int8 code: x ~ scale * code.
struct CodeHeader {
  float scale;  // max |x_i| / 127
  float resid;  // an upper bound of |x - scale * code| (Euclidean), for the lower bounds
  float norm2;  // |scale * code|^2, for the L2 graph distance
};

// Quantises x (dim components) into code. Symmetric, per vector. Never throws.
void quantize(const float *x, int dim, int8_t *code, CodeHeader *h);
// scale * code -> out
void dequantize(const int8_t *code, const CodeHeader &h, int dim, float *out);
// sum q[i] * code[i] (the instruction set follows kernels::active_isa()).
float dot_code(const float *q, const int8_t *code, int dim);

// sum a[i] * b[i] over two codes (AVX512-VNNI when the CPU has it and the active ISA is AVX-512).
int32_t dot_i8(const int8_t *a, const int8_t *b, int dim);
// Tests: true makes dot_i8 skip the VNNI variant.
extern bool force_no_vnni;

// Graph distance between two codes (both sides quantised).
inline float pair_distance(Metric metric, const int8_t *a, const CodeHeader &ha, const int8_t *b,
                           const CodeHeader &hb, int dim) {
  float ab = ha.scale * hb.scale * static_cast<float>(dot_i8(a, b, dim));
  if (metric == Metric::kL2) return ha.norm2 + hb.norm2 - 2.0f * ab;
  return -ab;
}

// Graph distance between the float query q (|q|^2 = qnorm2) and a code.
inline float code_distance(Metric metric, const float *q, float qnorm2, const int8_t *code,
                           const CodeHeader &h, int dim) {
  float qx = h.scale * dot_code(q, code, dim);
  if (metric == Metric::kL2) return qnorm2 - 2.0f * qx + h.norm2;
  return -qx;
}

// The refinement code: the quantisation error r = x - scale * code quantised again (int8, its own
// scale). h2.resid bounds |x - (scale * code + h2.scale * code2)|, h2.norm2 is the squared norm
// of that two-level reconstruction. Used only for the lower bounds of the results, so that they
// are tight (about 1/100 of the one-level bound): the executor then re-checks few rows.
void quantize_residual(const float *x, int dim, const int8_t *code, const CodeHeader &h,
                       int8_t *code2, CodeHeader *h2);

// A value never larger than what the SQL operator returns for (query, original vector), given
// the code of the vector: the executor re-checks the ORDER BY with the heap row and re-ranks.
// For cosine, q must be the unit-length query.
double lower_bound(Metric metric, const float *q, const int8_t *code, const CodeHeader &h, int dim);
// The same from both codes (tighter).
double lower_bound_refined(Metric metric, const float *q, const int8_t *code, const CodeHeader &h,
                           const int8_t *code2, const CodeHeader &h2, int dim);

}  // namespace lookalike::hnsw
