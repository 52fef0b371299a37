// lookalike.fit_projection(): runs a query of embeddings through a cursor (as the calling role),
// accumulates their covariance, fits a PCA whitening (model/whitening.hpp) and stores the result
// in lookalike.projections, which project() (lookalike.so) applies.
//
// The query must return the extension's own `embedding` type (looked up in the catalogue, never
// named by the caller), and every value is size-checked against its header before it is read
// (datum_get_embedding). The statements this file runs are schema-qualified.
//
// Frames that own C++ objects call PostgreSQL only through pg::guarded().
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "model/runtime.hpp"
#include "model/whitening.hpp"
#include "vector/embedding_pg.hpp"
#include "vector/projection.hpp"
#include "common/guard_pg.hpp"
#include "model/settings_pg.hpp"
#include "common/spi_pg.hpp"

extern "C" {
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "utils/portal.h"
#include "utils/syscache.h"
}

using namespace lookalike;
using namespace lookalike::model;

namespace {
constexpr int kFetchRows = 256;

// Whether `type` is this extension's `embedding` type (a type named embedding that belongs to
// extension lookalike), never one the caller names. C-style.
bool is_extension_embedding(Oid type) {
  if (getExtensionOfObject(TypeRelationId, type) != get_extension_oid("lookalike", false))
    return false;
  HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
  if (!HeapTupleIsValid(tup)) return false;
  bool ok = std::strcmp(NameStr(reinterpret_cast<Form_pg_type>(GETSTRUCT(tup))->typname),
                        "embedding") == 0;
  ReleaseSysCache(tup);
  return ok;
}

// Refuses to refit a projection of another role (superusers may). Runs inside SPI. C-style.
void check_owner(const char *name) {
  HeapTuple other = spi::select_by_key(
      "SELECT p.owner FROM lookalike.projections p WHERE p.name OPERATOR(pg_catalog.=) $1 "
      "AND p.owner OPERATOR(pg_catalog.<>) CURRENT_USER",
      name, "lookalike.projections");
  if (other != nullptr && !superuser())
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("projection \"%s\" belongs to another role", name)));
}

// Inserts or replaces the projection row; returns it (copied out of SPI). C-style.
Datum store_projection(FunctionCallInfo fcinfo, const char *name, const char *query, double epsilon,
                       double power, bytea *data, int dims_in, int dims_out, int64 rows,
                       double variance_kept) {
  static const char *sql =
      "INSERT INTO lookalike.projections AS p "
      "(name, method, dims_in, dims_out, epsilon, power, rows, variance_kept, source, data) "
      "VALUES ($1, 'pca_whitening', $2, $3, $4, $5, $6, $7, $8, $9) "
      "ON CONFLICT ON CONSTRAINT projections_pkey DO UPDATE "
      "SET method = excluded.method, dims_in = excluded.dims_in, dims_out = excluded.dims_out, "
      "epsilon = excluded.epsilon, power = excluded.power, rows = excluded.rows, "
      "variance_kept = excluded.variance_kept, source = excluded.source, data = excluded.data, "
      "fitted_at = pg_catalog.now() "
      "RETURNING p.*";
  Oid argtypes[9] = {TEXTOID, INT4OID,   INT4OID, FLOAT8OID, FLOAT8OID,
                     INT8OID, FLOAT8OID, TEXTOID, BYTEAOID};
  Datum args[9] = {
      CStringGetTextDatum(name),     Int32GetDatum(dims_in),     Int32GetDatum(dims_out),
      Float8GetDatum(epsilon),       Float8GetDatum(power),      Int64GetDatum(rows),
      Float8GetDatum(variance_kept), CStringGetTextDatum(query), PointerGetDatum(data)};
  int rc = SPI_execute_with_args(sql, 9, argtypes, args, nullptr, false, 1);
  if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
    elog(ERROR, "storing the projection failed: %s", SPI_result_code_string(rc));
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "return type must be a row type");
  return PointerGetDatum(SPI_returntuple(SPI_tuptable->vals[0], desc));
}

// A fit, ready to store: the serialized projection and its figures.
struct FitResult {
  std::vector<uint8_t> bytes;
  int dims_in = 0, dims_out = 0;
  int64_t rows = 0;
  double variance_kept = 1.0;
};

// Runs `query` (inside an open SPI connection) through a cursor and fits the projection. The
// query must return one column of the extension's own embedding type; each value is checked
// against its header before it is read.
FitResult fit_query(const std::string &query, double epsilon, double power, int components) {
  const int max_dims = pg::guarded([] { return model::max_fit_dims_setting(); });
  configure_threads(pg::guarded([] { return model::threads_setting(); }));
  Portal portal = nullptr;
  pg::guarded([&] {
    portal = spi::open_cursor(query.c_str(), true);
    TupleDesc desc = portal->tupDesc;
    if (desc->natts != 1 || !is_extension_embedding(TupleDescAttr(desc, 0)->atttypid))
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("fit_projection() query must return one column of type embedding")));
  });

  std::unique_ptr<CovarianceAccumulator> acc;
  int64_t skipped = 0;
  for (;;) {
    const uint64 n = pg::guarded([&] {
      CHECK_FOR_INTERRUPTS();
      return spi::fetch(portal, kFetchRows);
    });
    if (n == 0) break;
    for (uint64 i = 0; i < n; ++i) {
      // The vector, detoasted in SPI's memory (lives until spi::free_fetched).
      const Embedding *e = pg::guarded([&] {
        CHECK_FOR_INTERRUPTS();  // a row's Gram update costs up to d^2 (up to 2^28 per batch)
        bool isnull;
        Datum d = spi::column(spi::fetched(i), 1, &isnull);
        return isnull ? static_cast<const Embedding *>(nullptr) : datum_get_embedding(d);
      });
      if (e == nullptr) {
        ++skipped;
        continue;
      }
      const int dim = e->dim;
      if (!acc) {
        // The d x d covariance (twice, during the eigendecomposition) and the time of the
        // eigendecomposition grow as d^2 and d^3: lookalike.max_fit_dims (superuser) bounds them.
        if (dim > max_dims)
          throw Error(sqlstate::kProgramLimitExceeded,
                      "fit_projection() of " + std::to_string(dim) + "-dimensional vectors",
                      "lookalike.max_fit_dims is " + std::to_string(max_dims) +
                          ": the fit's memory grows as the square of the dimension and its "
                          "time as the cube.",
                      "A superuser may raise lookalike.max_fit_dims.");
        acc = std::make_unique<CovarianceAccumulator>(dim);
      }
      if (dim != acc->dims())
        throw Error(sqlstate::kDataException, "fit_projection() query returned vectors of " +
                                                  std::to_string(acc->dims()) + " and " +
                                                  std::to_string(dim) + " dimensions");
      acc->add(e->x);
    }
    pg::guarded([] { spi::free_fetched(); });
  }
  pg::guarded([&] { spi::close_cursor(portal); });
  if (!acc)
    throw Error(sqlstate::kInvalidParameterValue,
                "fit_projection() query returned no vectors" +
                    (skipped ? " (" + std::to_string(skipped) + " nulls)" : std::string()));

  // The eigendecomposition polls for cancel between steps of O(d^2) work.
  WhiteningFit fit = fit_whitening(*acc, epsilon, power, components,
                                   [] { pg::guarded([] { CHECK_FOR_INTERRUPTS(); }); });
  double total = 0, kept = 0;
  for (size_t i = 0; i < fit.eigenvalues.size(); ++i) {
    const double l = std::max(fit.eigenvalues[i], 0.0);
    total += l;
    if (i < size_t(fit.dims_out)) kept += l;
  }
  FitResult r;
  r.bytes = projection::serialize(fit.dims_in, fit.dims_out, fit.mean.data(), fit.matrix.data());
  r.dims_in = fit.dims_in;
  r.dims_out = fit.dims_out;
  r.rows = acc->rows();
  r.variance_kept = total > 0 ? kept / total : 1.0;
  return r;
}

// The fit's projection as a palloc'd bytea. C-style.
bytea *to_bytea(const std::vector<uint8_t> &bytes) {
  bytea *data = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
  SET_VARSIZE(data, VARHDRSZ + bytes.size());
  memcpy(VARDATA(data), bytes.data(), bytes.size());
  return data;
}

// Reads epsilon, power and components (arguments first..first+2); raises 22023 for nulls.
void fit_arguments(FunctionCallInfo fcinfo, int first, double *epsilon, double *power,
                   int *components) {
  if (PG_ARGISNULL(first) || PG_ARGISNULL(first + 1))
    throw Error(sqlstate::kInvalidParameterValue, "query, epsilon and power must not be null");
  *epsilon = PG_GETARG_FLOAT8(first);
  *power = PG_GETARG_FLOAT8(first + 1);
  *components = PG_ARGISNULL(first + 2) ? 0 : PG_GETARG_INT32(first + 2);
  if (!PG_ARGISNULL(first + 2) && *components < 1)
    throw Error(sqlstate::kInvalidParameterValue, "components must be positive (or null for all)");
}

}  // namespace

// lookalike._fit_projection(query text, embedding_type regtype, epsilon, power, components,
//   OUT data bytea, OUT dims_in int, OUT dims_out int, OUT rows bigint, OUT variance_kept float8)
// of release 0.1.0 (symbol lookalike_fit_projection), kept for databases not yet updated
// (docs/upgrading.md). It used to trust the type its caller named; now that argument must be the
// extension's own embedding type, and the query's column is checked as fit_projection() does.
LOOKALIKE_FUNCTION(lookalike_fit_projection) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw Error(sqlstate::kInvalidParameterValue, "query, epsilon and power must not be null");
  if (!pg::guarded([&] { return is_extension_embedding(PG_GETARG_OID(1)); }))
    throw Error(sqlstate::kDatatypeMismatch, "embedding_type must be lookalike's embedding type");
  double epsilon, power;
  int components;
  fit_arguments(fcinfo, 2, &epsilon, &power, &components);
  std::string query(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); }));
  pg::guarded([] { spi::connect(); });
  FitResult r = fit_query(query, epsilon, power, components);
  return pg::guarded([&] {
    spi::finish();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    Datum values[5] = {PointerGetDatum(to_bytea(r.bytes)), Int32GetDatum(r.dims_in),
                       Int32GetDatum(r.dims_out), Int64GetDatum(r.rows),
                       Float8GetDatum(r.variance_kept)};
    bool nulls[5] = {false, false, false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}

// lookalike.fit_projection(name text, query text, epsilon float8, power float8, components int)
//   RETURNS lookalike.projections
LOOKALIKE_FUNCTION(lookalike_fit_and_store_projection) {
  if (PG_ARGISNULL(0) || pg::guarded([&] { return VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)); }) == 0)
    throw Error(sqlstate::kInvalidParameterValue, "projection name must not be null or empty");
  std::string name(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); }));
  pg::guarded([&] {
    spi::connect();
    check_owner(name.c_str());
  });
  if (PG_ARGISNULL(1))
    throw Error(sqlstate::kInvalidParameterValue, "query, epsilon and power must not be null");
  double epsilon, power;
  int components;
  fit_arguments(fcinfo, 2, &epsilon, &power, &components);
  std::string query(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(1)); }));
  FitResult r = fit_query(query, epsilon, power, components);
  return pg::guarded([&] {
    Datum row = store_projection(fcinfo, name.c_str(), query.c_str(), epsilon, power,
                                 to_bytea(r.bytes), r.dims_in, r.dims_out, r.rows, r.variance_kept);
    spi::finish();
    return row;
  });
}
