// Distance functions and operators, vector arithmetic, comparison (btree) and the avg/sum
// aggregates of the `embedding` type. C-style code over palloc'd memory (see embedding_pg.cpp).
#include <cmath>
#include <cstring>

#include "vector/embedding_pg.hpp"
#include "common/guard_pg.hpp"
#include "vector/kernels.hpp"

using namespace lookalike;

namespace {

// Fetches two embeddings of equal dimension.
struct Pair {
  Embedding *a, *b;
};

Pair get_pair(FunctionCallInfo fcinfo) {
  Pair p{PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1)};
  check_same_dims(p.a, p.b);
  return p;
}

Embedding *finish(Embedding *r) {
  for (int i = 0; i < r->dim; ++i)
    if (std::isinf(r->x[i]))
      ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                      errmsg("value out of range: overflow")));
  return r;
}

}  // namespace

// ---- distances -----------------------------------------------------------------------------

LOOKALIKE_FUNCTION(embedding_l2_distance) {
  Pair p = get_pair(fcinfo);
  PG_RETURN_FLOAT8(std::sqrt(static_cast<double>(kernels::l2_squared(p.a->x, p.b->x, p.a->dim))));
}

LOOKALIKE_FUNCTION(embedding_l2_squared_distance) {
  Pair p = get_pair(fcinfo);
  PG_RETURN_FLOAT8(static_cast<double>(kernels::l2_squared(p.a->x, p.b->x, p.a->dim)));
}

LOOKALIKE_FUNCTION(embedding_inner_product) {
  Pair p = get_pair(fcinfo);
  PG_RETURN_FLOAT8(static_cast<double>(kernels::dot(p.a->x, p.b->x, p.a->dim)));
}

LOOKALIKE_FUNCTION(embedding_negative_inner_product) {
  Pair p = get_pair(fcinfo);
  PG_RETURN_FLOAT8(-static_cast<double>(kernels::dot(p.a->x, p.b->x, p.a->dim)));
}

LOOKALIKE_FUNCTION(embedding_cosine_distance) {
  Pair p = get_pair(fcinfo);
  PG_RETURN_FLOAT8(kernels::cosine_distance(p.a->x, p.b->x, p.a->dim));
}

LOOKALIKE_FUNCTION(embedding_cosine_similarity) {
  Pair p = get_pair(fcinfo);
  PG_RETURN_FLOAT8(1.0 - kernels::cosine_distance(p.a->x, p.b->x, p.a->dim));
}

// ---- properties and arithmetic -------------------------------------------------------------

LOOKALIKE_FUNCTION(embedding_dims) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  PG_RETURN_INT32(e->dim);
}

LOOKALIKE_FUNCTION(embedding_norm) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  double s = 0;
  for (int i = 0; i < e->dim; ++i) s += static_cast<double>(e->x[i]) * e->x[i];
  PG_RETURN_FLOAT8(std::sqrt(s));
}

// Unit-length copy; a zero vector stays zero (it has no direction to keep).
LOOKALIKE_FUNCTION(embedding_l2_normalize) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  Embedding *r = new_embedding(e->dim);
  double s = 0;
  for (int i = 0; i < e->dim; ++i) s += static_cast<double>(e->x[i]) * e->x[i];
  if (s > 0) {
    double inv = 1.0 / std::sqrt(s);
    for (int i = 0; i < e->dim; ++i) r->x[i] = static_cast<float>(e->x[i] * inv);
  }
  PG_RETURN_POINTER(r);
}

LOOKALIKE_FUNCTION(embedding_add) {
  Pair p = get_pair(fcinfo);
  Embedding *r = new_embedding(p.a->dim);
  for (int i = 0; i < r->dim; ++i) r->x[i] = p.a->x[i] + p.b->x[i];
  PG_RETURN_POINTER(finish(r));
}

LOOKALIKE_FUNCTION(embedding_sub) {
  Pair p = get_pair(fcinfo);
  Embedding *r = new_embedding(p.a->dim);
  for (int i = 0; i < r->dim; ++i) r->x[i] = p.a->x[i] - p.b->x[i];
  PG_RETURN_POINTER(finish(r));
}

LOOKALIKE_FUNCTION(embedding_mul) {
  Pair p = get_pair(fcinfo);
  Embedding *r = new_embedding(p.a->dim);
  for (int i = 0; i < r->dim; ++i) r->x[i] = p.a->x[i] * p.b->x[i];
  for (int i = 0; i < r->dim; ++i)
    if (r->x[i] == 0 && p.a->x[i] != 0 && p.b->x[i] != 0)
      ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                      errmsg("value out of range: underflow")));
  PG_RETURN_POINTER(finish(r));
}

// ---- comparison (btree: equality, DISTINCT, GROUP BY, unique indexes) ----------------------
// Order: component by component, then the shorter vector first.

static int compare(const Embedding *a, const Embedding *b) {
  int n = a->dim < b->dim ? a->dim : b->dim;
  for (int i = 0; i < n; ++i) {
    if (a->x[i] < b->x[i]) return -1;
    if (a->x[i] > b->x[i]) return 1;
  }
  return (a->dim > b->dim) - (a->dim < b->dim);
}

#define COMPARISON(name, expr)               \
  LOOKALIKE_FUNCTION(name) {                 \
    Embedding *a = PG_GETARG_EMBEDDING_P(0); \
    Embedding *b = PG_GETARG_EMBEDDING_P(1); \
    int c = compare(a, b);                   \
    PG_RETURN_BOOL(expr);                    \
  }
COMPARISON(embedding_lt, c < 0)
COMPARISON(embedding_le, c <= 0)
COMPARISON(embedding_eq, c == 0)
COMPARISON(embedding_ne, c != 0)
COMPARISON(embedding_ge, c >= 0)
COMPARISON(embedding_gt, c > 0)
#undef COMPARISON

LOOKALIKE_FUNCTION(embedding_cmp) {
  PG_RETURN_INT32(compare(PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1)));
}

// ---- aggregates: avg(embedding), sum(embedding) --------------------------------------------
// The transition state is a double precision[] {count, sum_1, ..., sum_dim}; its initial value
// is '{0}'. In aggregate context the state is updated in place.

namespace {

// The state's values {count, sum_1..sum_dim}, checked: a 1-D float8 array without nulls, either
// the initial {0} or a count >= 1 followed by 1..kMaxDims finite sums. Raises 22000 otherwise,
// so no state (however it was built) turns into a value that cannot be read back.
double *state_values(ArrayType *a, int *n) {
  if (ARR_NDIM(a) != 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != FLOAT8OID || ARR_LBOUND(a)[0] != 1)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("invalid embedding aggregate state")));
  *n = ARR_DIMS(a)[0];
  auto *v = reinterpret_cast<double *>(ARR_DATA_PTR(a));
  if (*n == 1 && v[0] == 0) return v;  // the initial state: no rows yet
  bool ok =
      *n >= 2 && *n - 1 <= kMaxDims && std::isfinite(v[0]) && v[0] >= 1 && v[0] == std::floor(v[0]);
  for (int i = 1; ok && i < *n; ++i) ok = std::isfinite(v[i]);
  if (!ok)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("invalid embedding aggregate state"),
                    errdetail("The state is {count, sum_1, ..., sum_n}: a whole count of at "
                              "least 1 and 1 to %d finite sums.",
                              kMaxDims)));
  return v;
}

ArrayType *new_state(int dim, MemoryContext cxt) {
  MemoryContext old = MemoryContextSwitchTo(cxt);
  auto *zeros = static_cast<Datum *>(palloc(sizeof(Datum) * (dim + 1)));
  for (int i = 0; i <= dim; ++i) zeros[i] = Float8GetDatum(0.0);
  ArrayType *a =
      construct_array(zeros, dim + 1, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
  MemoryContextSwitchTo(old);
  return a;
}

MemoryContext agg_context(FunctionCallInfo fcinfo) {
  MemoryContext cxt;
  if (!AggCheckCallContext(fcinfo, &cxt))
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("embedding aggregate support function called outside an aggregate")));
  return cxt;
}

}  // namespace

LOOKALIKE_FUNCTION(embedding_accum) {
  MemoryContext cxt = agg_context(fcinfo);
  ArrayType *state = PG_GETARG_ARRAYTYPE_P(0);
  Embedding *e = PG_GETARG_EMBEDDING_P(1);
  int n;
  double *v = state_values(state, &n);
  if (n == 1 && v[0] == 0) {
    state = new_state(e->dim, cxt);
    v = reinterpret_cast<double *>(ARR_DATA_PTR(state));  // {0, 0...}: filled below
    n = e->dim + 1;
  } else if (n - 1 != e->dim) {
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("different embedding dimensions %d and %d", n - 1, e->dim)));
  }
  v[0] += 1;
  for (int i = 0; i < e->dim; ++i) v[i + 1] += e->x[i];
  PG_RETURN_ARRAYTYPE_P(state);
}

LOOKALIKE_FUNCTION(embedding_combine) {
  MemoryContext cxt = agg_context(fcinfo);
  ArrayType *s1 = PG_GETARG_ARRAYTYPE_P(0);
  ArrayType *s2 = PG_GETARG_ARRAYTYPE_P(1);
  int n1, n2;
  double *v1 = state_values(s1, &n1);
  double *v2 = state_values(s2, &n2);
  if (n2 == 1 && v2[0] == 0) PG_RETURN_ARRAYTYPE_P(s1);
  if (n1 == 1 && v1[0] == 0) {
    s1 = new_state(n2 - 1, cxt);
    v1 = reinterpret_cast<double *>(ARR_DATA_PTR(s1));  // {0, 0...}: v2 is added below
    n1 = n2;
  } else if (n1 != n2) {
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("different embedding dimensions %d and %d", n1 - 1, n2 - 1)));
  }
  for (int i = 0; i < n1; ++i) v1[i] += v2[i];
  PG_RETURN_ARRAYTYPE_P(s1);
}

static Datum aggregate_final(FunctionCallInfo fcinfo, bool average) {
  agg_context(fcinfo);
  ArrayType *state = PG_GETARG_ARRAYTYPE_P(0);
  int n;
  double *v = state_values(state, &n);
  if (n == 1 || v[0] == 0) PG_RETURN_NULL();  // no rows
  Embedding *r = new_embedding(n - 1);
  for (int i = 0; i < n - 1; ++i) {
    double x = average ? v[i + 1] / v[0] : v[i + 1];
    if (std::fabs(x) > 3.4028234663852886e38)
      ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                      errmsg("value out of range: overflow")));
    r->x[i] = static_cast<float>(x);
  }
  PG_RETURN_POINTER(r);
}

LOOKALIKE_FUNCTION(embedding_avg) { return aggregate_final(fcinfo, true); }
LOOKALIKE_FUNCTION(embedding_sum) { return aggregate_final(fcinfo, false); }

// ---- diagnostics ---------------------------------------------------------------------------

LOOKALIKE_FUNCTION(lookalike_simd) {
  PG_RETURN_TEXT_P(cstring_to_text(kernels::isa_name(kernels::active_isa())));
}
