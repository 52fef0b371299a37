// lookalike._fit_projection(): runs a query of embeddings through a cursor, accumulates their
// covariance and fits a PCA whitening (model/whitening.hpp). lookalike.fit_projection() (SQL)
// stores the result in lookalike.projections, which project() (lookalike.so) applies.
//
// Frames that own C++ objects call PostgreSQL only through pg::guarded().
#include <cmath>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "model/runtime.hpp"
#include "model/whitening.hpp"
#include "vector/embedding_pg.hpp"
#include "vector/projection.hpp"
#include "common/guard_pg.hpp"
#include "common/settings_pg.hpp"

extern "C" {
#include "executor/spi.h"
#include "utils/portal.h"
}

using namespace lookalike;
using namespace lookalike::model;

namespace {
constexpr int kFetchRows = 256;
}

// lookalike._fit_projection(query text, embedding_type regtype, epsilon float8, power float8,
//                           components int,
//                           OUT data bytea, OUT dims_in int, OUT dims_out int, OUT rows bigint,
//                           OUT variance_kept float8)
LOOKALIKE_FUNCTION(lookalike_fit_projection) {
  for (int i = 0; i < 4; ++i)
    if (PG_ARGISNULL(i))
      throw Error(sqlstate::kInvalidParameterValue, "query, epsilon and power must not be null");
  std::string query(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); }));
  const Oid embedding_type = PG_GETARG_OID(1);
  const double epsilon = PG_GETARG_FLOAT8(2), power = PG_GETARG_FLOAT8(3);
  const int components = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
  if (!PG_ARGISNULL(4) && components < 1)
    throw Error(sqlstate::kInvalidParameterValue, "components must be positive (or null for all)");
  configure_threads(
      int(pg::guarded([] { return pg::setting_int("lookalike.threads", kDefaultModelThreads); })));

  Portal portal = nullptr;
  pg::guarded([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    portal = SPI_cursor_open_with_args(nullptr, query.c_str(), 0, nullptr, nullptr, nullptr, true,
                                       CURSOR_OPT_NO_SCROLL);
    TupleDesc desc = portal->tupDesc;
    if (desc->natts != 1 || TupleDescAttr(desc, 0)->atttypid != embedding_type)
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("fit_projection() query must return one column of type embedding")));
  });

  std::unique_ptr<CovarianceAccumulator> acc;
  int64_t skipped = 0;
  for (;;) {
    pg::guarded([&] {
      CHECK_FOR_INTERRUPTS();
      SPI_cursor_fetch(portal, true, kFetchRows);
    });
    const uint64 n = SPI_processed;
    if (n == 0) break;
    for (uint64 i = 0; i < n; ++i) {
      // Copy the vector out (detoasting in SPI's memory), then work in C++.
      // The vector, detoasted in SPI's memory (lives until SPI_freetuptable).
      const Embedding *e = pg::guarded([&] {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
        return isnull ? static_cast<const Embedding *>(nullptr) : datum_get_embedding(d);
      });
      if (e == nullptr) {
        ++skipped;
        continue;
      }
      const int dim = e->dim;
      if (!acc) acc = std::make_unique<CovarianceAccumulator>(dim);
      if (dim != acc->dims())
        throw Error(sqlstate::kDataException, "fit_projection() query returned vectors of " +
                                                  std::to_string(acc->dims()) + " and " +
                                                  std::to_string(dim) + " dimensions");
      acc->add(e->x);
    }
    pg::guarded([] { SPI_freetuptable(SPI_tuptable); });
  }
  pg::guarded([&] {
    SPI_cursor_close(portal);
    SPI_finish();
  });
  if (!acc)
    throw Error(sqlstate::kInvalidParameterValue,
                "fit_projection() query returned no vectors" +
                    (skipped ? " (" + std::to_string(skipped) + " nulls)" : std::string()));

  WhiteningFit fit = fit_whitening(*acc, epsilon, power, components);
  double total = 0, kept = 0;
  for (size_t i = 0; i < fit.eigenvalues.size(); ++i) {
    const double l = std::max(fit.eigenvalues[i], 0.0);
    total += l;
    if (i < size_t(fit.dims_out)) kept += l;
  }
  std::vector<uint8_t> bytes =
      projection::serialize(fit.dims_in, fit.dims_out, fit.mean.data(), fit.matrix.data());
  const int64_t rows = acc->rows();
  return pg::guarded([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    bytea *data = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
    SET_VARSIZE(data, VARHDRSZ + bytes.size());
    memcpy(VARDATA(data), bytes.data(), bytes.size());
    Datum values[5] = {PointerGetDatum(data), Int32GetDatum(fit.dims_in),
                       Int32GetDatum(fit.dims_out), Int64GetDatum(rows),
                       Float8GetDatum(total > 0 ? kept / total : 1.0)};
    bool nulls[5] = {false, false, false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}
