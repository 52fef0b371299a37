// Casts between lookalike's `embedding` and pgvector's `vector`, used by the companion
// extension lookalike_pgvector (extension/lookalike_pgvector--*.sql). The functions live in
// lookalike.so, so that the companion needs no library of its own; only its SQL script names
// pgvector's type, so lookalike itself never depends on pgvector.
//
// Both types have one layout (pgvector src/vector.h, `struct Vector`; ours in
// src/vector/embedding_pg.hpp): a 4-byte varlena header, int16 dim, int16 reserved (always 0),
// then dim float4 components. Both reject NaN and infinity, both allow 1..16000 dimensions, and
// both use the number of dimensions as the typmod of vector(n) / embedding(n). A conversion is
// therefore a validated copy of the bytes: the value is checked as the target type's own input
// function would check it (dimension range, reserved field, exact size, finite components,
// typmod), so that neither side ever holds a value its own code would refuse.
#include <cmath>
#include <cstring>

#include "common/constants.hpp"
#include "common/guard_pg.hpp"
#include "vector/embedding_pg.hpp"

namespace {

using lookalike::Embedding;
using lookalike::kMaxDims;

// Returns a palloc'd copy of the value in `d` after checking it. `target` names the type being
// produced, for messages.
Embedding *checked_copy(Datum d, int32 typmod, const char *source, const char *target) {
  auto *in = reinterpret_cast<Embedding *>(PG_DETOAST_DATUM(d));
  size_t size = VARSIZE(in);
  if (size < offsetof(Embedding, x))
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid %s value: %zu bytes", source, size)));
  int dim = in->dim;
  if (dim < 1 || dim > kMaxDims)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("cannot cast %s of %d dimensions to %s", source, dim, target),
                    errdetail("%s takes 1 to %d dimensions.", target, kMaxDims)));
  if (in->unused != 0)
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                    errmsg("invalid %s value: reserved field is %d, expected 0", source,
                           static_cast<int>(in->unused))));
  if (size != lookalike::embedding_size(dim))
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                    errmsg("invalid %s value: %zu bytes for %d dimensions", source, size, dim)));
  if (typmod != -1 && typmod != dim)
    ereport(ERROR,
            (errcode(ERRCODE_DATA_EXCEPTION), errmsg("expected %d dimensions, not %d", typmod, dim),
             errhint("The %s has %d dimensions; the target type is %s(%d).", source, dim, target,
                     typmod)));
  for (int i = 0; i < dim; ++i) {
    if (std::isnan(in->x[i]) || std::isinf(in->x[i]))
      ereport(ERROR,
              (errcode(ERRCODE_DATA_EXCEPTION),
               errmsg("cannot cast %s to %s: component %d is not finite", source, target, i + 1)));
  }
  auto *out = static_cast<Embedding *>(palloc(size));
  std::memcpy(out, in, size);
  SET_VARSIZE(out, size);
  if (reinterpret_cast<Pointer>(in) != DatumGetPointer(d)) pfree(in);
  return out;
}

}  // namespace

// vector -> embedding(n): (vector, typmod, explicit) as PostgreSQL calls a cast function.
LOOKALIKE_FUNCTION(lookalike_embedding_from_pgvector) {
  PG_RETURN_POINTER(checked_copy(PG_GETARG_DATUM(0), PG_GETARG_INT32(1), "vector", "embedding"));
}

// embedding -> vector(n).
LOOKALIKE_FUNCTION(lookalike_embedding_to_pgvector) {
  PG_RETURN_POINTER(checked_copy(PG_GETARG_DATUM(0), PG_GETARG_INT32(1), "embedding", "vector"));
}
