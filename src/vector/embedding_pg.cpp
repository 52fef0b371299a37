// The `embedding` type: text and binary I/O, the dimension typmod, casts from and to arrays.
// These functions are C-style (palloc'd memory only, no C++ objects with destructors), so they
// may call PostgreSQL directly; the pure text parser throws lookalike::Error, which the
// LOOKALIKE_FUNCTION boundary turns into an ereport.
#include <cmath>
#include <cstring>

#include "vector/embedding_pg.hpp"
#include "common/guard_pg.hpp"
#include "vector/binary.hpp"
#include "vector/text.hpp"

namespace lookalike {

static void check_dim_range(int64 dim) {
  if (dim < 1)
    ereport(ERROR,
            (errcode(ERRCODE_DATA_EXCEPTION), errmsg("embedding must have at least 1 dimension")));
  if (dim > kMaxDims)
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    errmsg("embedding cannot have more than %d dimensions", kMaxDims)));
}

void check_typmod(int dim, int32 typmod) {
  if (typmod != -1 && dim != typmod)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("expected %d dimensions, not %d", typmod, dim)));
}

void check_same_dims(const Embedding *a, const Embedding *b) {
  if (a->dim != b->dim)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("different embedding dimensions %d and %d", a->dim, b->dim)));
}

void check_finite(float v) {
  if (std::isnan(v))
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("NaN not allowed in embedding")));
  if (std::isinf(v))
    ereport(ERROR,
            (errcode(ERRCODE_DATA_EXCEPTION), errmsg("infinite value not allowed in embedding")));
}

}  // namespace lookalike

using namespace lookalike;

LOOKALIKE_FUNCTION(embedding_in) {
  const char *s = PG_GETARG_CSTRING(0);
  int32 typmod = PG_GETARG_INT32(2);
  size_t cap = text::max_elements(s);
  if (cap > static_cast<size_t>(kMaxDims)) cap = kMaxDims + 1;  // parse() reports the limit
  auto *buf = static_cast<float *>(palloc(sizeof(float) * cap));
  size_t n = text::parse(s, buf, cap);
  check_dim_range(static_cast<int64>(n));
  check_typmod(static_cast<int>(n), typmod);
  Embedding *e = new_embedding(static_cast<int>(n));
  std::memcpy(e->x, buf, sizeof(float) * n);
  pfree(buf);
  PG_RETURN_POINTER(e);
}

LOOKALIKE_FUNCTION(embedding_out) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  auto *buf = static_cast<char *>(palloc(text::max_text_length(e->dim)));
  text::format(e->x, e->dim, buf);
  PG_FREE_IF_COPY(e, 0);
  PG_RETURN_CSTRING(buf);
}

LOOKALIKE_FUNCTION(embedding_typmod_in) {
  ArrayType *ta = PG_GETARG_ARRAYTYPE_P(0);
  int n = 0;
  int32 *tl = ArrayGetIntegerTypmods(ta, &n);
  if (n != 1)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid type modifier"),
                    errdetail("embedding takes one modifier, its number of dimensions.")));
  if (tl[0] < 1)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("dimensions for type embedding must be at least 1")));
  if (tl[0] > kMaxDims)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("dimensions for type embedding cannot exceed %d", kMaxDims)));
  PG_RETURN_INT32(tl[0]);
}

LOOKALIKE_FUNCTION(embedding_typmod_out) {
  int32 typmod = PG_GETARG_INT32(0);
  if (typmod < 0) PG_RETURN_CSTRING(pstrdup(""));
  PG_RETURN_CSTRING(psprintf("(%d)", typmod));
}

// Binary form (pgvector's too): int16 dim, int16 reserved, dim float4 in network order. The
// decoding is the pure binary::decode (src/vector/binary.cpp, fuzzed by test/fuzz/).
LOOKALIKE_FUNCTION(embedding_recv) {
  StringInfo buf = reinterpret_cast<StringInfo>(PG_GETARG_POINTER(0));
  int32 typmod = PG_GETARG_INT32(2);
  const auto *data = reinterpret_cast<const uint8_t *>(buf->data + buf->cursor);
  size_t len = static_cast<size_t>(buf->len - buf->cursor);
  int dim = binary::decode_dim(data, len);
  check_typmod(dim, typmod);
  Embedding *e = new_embedding(dim);
  binary::decode(data, len, e->x);
  buf->cursor = buf->len;
  PG_RETURN_POINTER(e);
}

LOOKALIKE_FUNCTION(embedding_send) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  StringInfoData buf;
  pq_begintypsend(&buf);
  pq_sendint(&buf, e->dim, sizeof(int16));
  pq_sendint(&buf, e->unused, sizeof(int16));
  for (int i = 0; i < e->dim; ++i) pq_sendfloat4(&buf, e->x[i]);
  PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

// Length coercion: embedding -> embedding(n).
LOOKALIKE_FUNCTION(embedding_coerce) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  check_typmod(e->dim, PG_GETARG_INT32(1));
  PG_RETURN_POINTER(e);
}

// integer[], real[], double precision[] (and numeric[]) -> embedding.
LOOKALIKE_FUNCTION(array_to_embedding) {
  ArrayType *a = PG_GETARG_ARRAYTYPE_P(0);
  int32 typmod = PG_GETARG_INT32(1);
  if (ARR_NDIM(a) > 1)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("array must be 1-D")));
  if (ARR_HASNULL(a) && array_contains_nulls(a))
    ereport(ERROR,
            (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("array must not contain nulls")));
  Oid elemtype = ARR_ELEMTYPE(a);
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
  Datum *elems;
  int n;
  deconstruct_array(a, elemtype, typlen, typbyval, typalign, &elems, nullptr, &n);
  check_dim_range(n);
  check_typmod(n, typmod);
  Embedding *e = new_embedding(n);
  for (int i = 0; i < n; ++i) {
    double v;
    switch (elemtype) {
      case INT4OID:
        v = DatumGetInt32(elems[i]);
        break;
      case FLOAT4OID:
        v = DatumGetFloat4(elems[i]);
        break;
      case FLOAT8OID:
        v = DatumGetFloat8(elems[i]);
        break;
      case NUMERICOID:
        v = DatumGetFloat8(DirectFunctionCall1(numeric_float8, elems[i]));
        break;
      default:
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("unsupported array element type %s", format_type_be(elemtype))));
    }
    if (std::isfinite(v) && std::fabs(v) > 3.4028234663852886e38)
      ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                      errmsg("value %g at position %d is out of range for type real", v, i + 1)));
    e->x[i] = static_cast<float>(v);
    check_finite(e->x[i]);
  }
  pfree(elems);
  PG_RETURN_POINTER(e);
}

// embedding -> real[].
LOOKALIKE_FUNCTION(embedding_to_float4) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  auto *d = static_cast<Datum *>(palloc(sizeof(Datum) * e->dim));
  for (int i = 0; i < e->dim; ++i) d[i] = Float4GetDatum(e->x[i]);
  ArrayType *a = construct_array(d, e->dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
  pfree(d);
  PG_RETURN_POINTER(a);
}
