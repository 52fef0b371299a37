// fused_embedding(a, b, weight_a): the weighted concatenation of two L2-normalised embeddings,
// whose cosine is the weighted sum of the two cosines. C-style (palloc'd memory only).
#include <cmath>

#include "common/guard_pg.hpp"
#include "vector/embedding_pg.hpp"
#include "vector/kernels.hpp"

using namespace lookalike;

LOOKALIKE_FUNCTION(embedding_fused) {
  Embedding *a = PG_GETARG_EMBEDDING_P(0);
  Embedding *b = PG_GETARG_EMBEDDING_P(1);
  const double w = PG_GETARG_FLOAT8(2);
  if (!(w >= 0.0 && w <= 1.0))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("weight_a must be between 0 and 1, not %g", w)));
  const int dim = a->dim + b->dim;
  if (dim > kMaxDims)
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    errmsg("embedding cannot have more than %d dimensions", kMaxDims)));
  const double na = std::sqrt(static_cast<double>(kernels::dot(a->x, a->x, a->dim)));
  const double nb = std::sqrt(static_cast<double>(kernels::dot(b->x, b->x, b->dim)));
  if (na == 0.0 || nb == 0.0)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("cannot fuse a zero vector: its direction is undefined")));
  Embedding *r = new_embedding(dim);
  const double sa = std::sqrt(w) / na, sb = std::sqrt(1.0 - w) / nb;
  for (int i = 0; i < a->dim; ++i) r->x[i] = static_cast<float>(a->x[i] * sa);
  for (int i = 0; i < b->dim; ++i) r->x[a->dim + i] = static_cast<float>(b->x[i] * sb);
  PG_RETURN_POINTER(r);
}
