// exact_knn(): exact batch k-nearest-neighbour search from SQL (see topk.hpp and
// extension/parts/10_embedding.sql). The arrays are flattened by C-style helpers (palloc'd
// memory only) called through pg::guarded; the search itself is pure C++.
#include <cstring>
#include <vector>

#include "vector/embedding_pg.hpp"
#include "vector/topk.hpp"
#include "common/guard_pg.hpp"
#include "common/spi_pg.hpp"

namespace {

struct Flat {
  int64 *ids;
  float *x;
  int n;
  int dim;  // -1 while unknown
};

// Copies an id array and an embedding array of the same length into contiguous buffers.
// C-style (palloc, ereport): run through pg::guarded from C++ frames.
void flatten(ArrayType *id_arr, ArrayType *vec_arr, const char *what, Flat *out) {
  if (ARR_NDIM(id_arr) > 1 || ARR_NDIM(vec_arr) > 1)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("%s: arrays must be one-dimensional", what)));
  Datum *ids;
  bool *id_nulls;
  int nid;
  deconstruct_array(id_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &ids, &id_nulls, &nid);
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(ARR_ELEMTYPE(vec_arr), &typlen, &typbyval, &typalign);
  Datum *vecs;
  bool *vec_nulls;
  int nvec;
  deconstruct_array(vec_arr, ARR_ELEMTYPE(vec_arr), typlen, typbyval, typalign, &vecs, &vec_nulls,
                    &nvec);
  if (nid != nvec)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("%s: %d ids but %d embeddings", what, nid, nvec)));
  out->n = nid;
  out->ids = static_cast<int64 *>(palloc(sizeof(int64) * (nid > 0 ? nid : 1)));
  out->x = nullptr;
  for (int i = 0; i < nid; ++i) {
    if (id_nulls[i] || vec_nulls[i])
      ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                      errmsg("%s: element %d is null", what, i + 1),
                      errhint("Filter out rows without an embedding before aggregating.")));
    out->ids[i] = DatumGetInt64(ids[i]);
    auto *e = lookalike::datum_get_embedding(vecs[i]);
    if (out->dim < 0) out->dim = e->dim;
    if (out->x == nullptr) {
      out->x = static_cast<float *>(
          MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * size_t(nid) * out->dim));
    }
    if (e->dim != out->dim)
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                      errmsg("different embedding dimensions %d and %d", out->dim, e->dim)));
    std::memcpy(out->x + size_t(i) * out->dim, e->x, sizeof(float) * e->dim);
    if (reinterpret_cast<Pointer>(e) != DatumGetPointer(vecs[i])) pfree(e);
  }
}

}  // namespace

using namespace lookalike;

// exact_knn(query_ids bigint[], queries embedding[], ids bigint[], vectors embedding[],
//           k integer, metric text DEFAULT 'cosine', exclude_self boolean DEFAULT true)
//   RETURNS TABLE (query_id bigint, rank integer, id bigint, distance double precision)
LOOKALIKE_FUNCTION(embedding_exact_knn) {
  Flat q{nullptr, nullptr, 0, -1}, v{nullptr, nullptr, 0, -1};
  int32 k = 0;
  bool exclude_self = true;
  char *metric_name = nullptr;
  spi::ResultSet out{nullptr, nullptr};
  pg::guarded([&] {
    flatten(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_ARRAYTYPE_P(1), "queries", &q);
    v.dim = q.dim;
    flatten(PG_GETARG_ARRAYTYPE_P(2), PG_GETARG_ARRAYTYPE_P(3), "vectors", &v);
    k = PG_GETARG_INT32(4);
    metric_name = text_to_cstring(PG_GETARG_TEXT_PP(5));
    exclude_self = PG_GETARG_BOOL(6);
    out = spi::materialize(fcinfo);
  });
  if (k < 1) throw Error(sqlstate::kInvalidParameterValue, "k must be at least 1");
  const Metric metric = parse_metric(metric_name);
  if (q.n == 0 || v.n == 0) return static_cast<Datum>(0);

  std::vector<topk::Neighbour> result =
      topk::search(q.x, reinterpret_cast<const int64_t *>(q.ids), q.n, v.x,
                   reinterpret_cast<const int64_t *>(v.ids), v.n, q.dim, static_cast<size_t>(k),
                   metric, exclude_self, [] { pg::guarded([] { CHECK_FOR_INTERRUPTS(); }); });
  for (const auto &nb : result) {
    pg::guarded([&] {
      Datum values[4] = {Int64GetDatum(nb.query_id), Int32GetDatum(nb.rank), Int64GetDatum(nb.id),
                         Float8GetDatum(nb.distance)};
      bool nulls[4] = {false, false, false, false};
      out.put(values, nulls);
    });
  }
  return static_cast<Datum>(0);
}
