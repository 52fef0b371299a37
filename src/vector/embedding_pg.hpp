// The on-disk and in-memory layout of the `embedding` type, for the PostgreSQL side (the type's
// functions and the index). The layout equals pgvector's `vector`: a varlena header, a 16-bit
// dimension count, 16 reserved bits (zero) and the float4 components.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/constants.hpp"
#include "common/pg.hpp"

namespace lookalike {

struct Embedding {
  int32 vl_len_;  // varlena header (do not touch directly)
  uint16 dim;     // number of components
  uint16 unused;  // reserved, always 0
  float x[FLEXIBLE_ARRAY_MEMBER];
};

inline size_t embedding_size(int dim) { return offsetof(Embedding, x) + sizeof(float) * dim; }

// The embedding of a Datum, detoasted, after checking that the value is as long as its header
// says (1..kMaxDims components): no caller ever reads past the end of a value, whatever produced
// it. Raises XX001 otherwise. Inline (one comparison) because every library uses it and the
// distance operators call it per row.
inline Embedding *datum_get_embedding(Datum d) {
  auto *e = reinterpret_cast<Embedding *>(PG_DETOAST_DATUM(d));
  const size_t size = VARSIZE(e);
  if (unlikely(size < offsetof(Embedding, x) || e->dim < 1 || e->dim > kMaxDims ||
               size != embedding_size(e->dim)))
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid embedding value"),
                    errdetail("A value of %zu bytes does not hold the %d components its header "
                              "claims.",
                              size, size < offsetof(Embedding, x) ? 0 : int(e->dim))));
  return e;
}

// The one allocator of embeddings: `dim` components in CurrentMemoryContext, copied from x, or
// zero when x is null. Inline, so that every library (lookalike_image.so and lookalike_model.so
// cannot link lookalike.so's symbols) uses this same code. C-style: palloc may raise.
inline Embedding *new_embedding(int dim, const float *x = nullptr) {
  size_t size = embedding_size(dim);
  auto *e = static_cast<Embedding *>(palloc0(size));
  SET_VARSIZE(e, size);
  e->dim = static_cast<uint16>(dim);
  if (x != nullptr) memcpy(e->x, x, sizeof(float) * size_t(dim));
  return e;
}

// Raises 22000 if dim does not match a typmod of embedding(n) (typmod -1: any dimension).
void check_typmod(int dim, int32 typmod);
// Raises 22000 if the two dimensions differ (mixed dimensions in one operator call).
void check_same_dims(const Embedding *a, const Embedding *b);
// Raises 22000 for NaN or infinity at component i.
void check_finite(float v);

}  // namespace lookalike

#define PG_GETARG_EMBEDDING_P(n) (::lookalike::datum_get_embedding(PG_GETARG_DATUM(n)))
