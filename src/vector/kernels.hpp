// Distance kernels over float32 vectors. Pure C++: used by the SQL operators, the index and the
// unit tests. The instruction set (AVX-512F, AVX2+FMA or portable) is chosen once at run time
// from what the CPU supports; every variant gives the same result up to float rounding.
#pragma once

#include <cstddef>

namespace lookalike::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Inner product sum(a[i] * b[i]).
float dot(const float *a, const float *b, size_t n);
// Squared Euclidean distance sum((a[i] - b[i])^2).
float l2_squared(const float *a, const float *b, size_t n);
// One pass computing a.b, a.a and b.b (the parts of the cosine), accumulated in double precision:
// the products of two floats are exact in double, so the cosine of two float vectors is nearly
// exact and near-ties are ordered as exact arithmetic orders them, whatever the ISA.
struct CosineParts {
  double ab, aa, bb;
};
CosineParts cosine_parts(const float *a, const float *b, size_t n);
// The same parts when b.b is already known (many vectors a against one fixed b: an exact top-k
// scan): `bb` must be cosine_parts(b, b, n).bb. a.b and a.a are computed with exactly the
// operations of cosine_parts, so the result equals cosine_parts(a, b, n) bit for bit, at two
// thirds of the arithmetic.
CosineParts cosine_parts_fixed(const float *a, const float *b, size_t n, double bb);

// 1 - cos(a, b), in [0, 2]. NaN when either vector has zero norm (the angle is undefined); NaN
// sorts after every number in PostgreSQL, so zero vectors come last in an ascending ORDER BY.
double cosine_distance(const float *a, const float *b, size_t n);
// The same from its parts.
double cosine_distance(const CosineParts &p);

// The ISA in use, and a switch for tests and benchmarks (returns false if the CPU lacks it).
Isa active_isa();
const char *isa_name(Isa isa);
bool force_isa(Isa isa);
bool cpu_supports(Isa isa);
// The best ISA this CPU supports (AVX-512, then AVX2, then portable): the default.
Isa best_isa();

}  // namespace lookalike::kernels
