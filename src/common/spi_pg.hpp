// SPI and set-returning results in a few calls, so that no feature writes the SPI connection,
// the one-row read by key, the cursor loop or the result tuplestore by hand (in the spirit of
// pg_duckdb's src/pg/). C-style: these functions raise PostgreSQL errors and own no C++ object;
// from a frame that owns C++ objects, call them inside pg::guarded (guard_pg.hpp).
//
//   spi::connect();
//   if (HeapTuple row = spi::select_by_key(
//           "SELECT data FROM s.t WHERE name OPERATOR(pg_catalog.=) $1", name, "t"))
//     ... spi::column(row, 1, &isnull) ...
//   spi::finish();
//
//   Portal p = spi::open_cursor(query);
//   while (uint64 n = spi::fetch(p, 1000)) { ... spi::fetched(i) ...; spi::free_fetched(); }
//   spi::close_cursor(p);
#pragma once

#include "common/pg.hpp"

extern "C" {
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/plannodes.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
}

namespace lookalike::spi {

// Connects to SPI (raises an error when it cannot).
inline void connect() {
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
}

inline void finish() { SPI_finish(); }

// Runs the read-only query sql with $1 = key (text) and returns its first row, or nullptr when
// it has none; the row lives until finish(). `what` names what is read in the error raised when
// the query fails. The query runs with the caller's search_path: qualify every table, function
// and operator (OPERATOR(pg_catalog.=)), or a session's own objects take their place.
inline HeapTuple select_by_key(const char *sql, const char *key, const char *what) {
  Oid argtypes[1] = {TEXTOID};
  Datum args[1] = {CStringGetTextDatum(key)};
  int rc = SPI_execute_with_args(sql, 1, argtypes, args, nullptr, true, 1);
  if (rc != SPI_OK_SELECT) elog(ERROR, "reading %s failed: %s", what, SPI_result_code_string(rc));
  return SPI_processed >= 1 ? SPI_tuptable->vals[0] : nullptr;
}

// Column col (from 1) of a row of the last result, in binary; *isnull tells NULL.
inline Datum column(HeapTuple row, int col, bool *isnull) {
  return SPI_getbinval(row, SPI_tuptable->tupdesc, col, isnull);
}

// Column col of a row of the last result as text (palloc'd in SPI's memory), nullptr for NULL.
inline char *column_text(HeapTuple row, int col) {
  return SPI_getvalue(row, SPI_tuptable->tupdesc, col);
}

// A bytea column copied (detoasted, 4-byte header) into cxt, so that it outlives finish();
// nullptr for NULL.
inline bytea *column_bytea_copy(HeapTuple row, int col, MemoryContext cxt) {
  bool isnull;
  Datum d = column(row, col, &isnull);
  if (isnull) return nullptr;
  MemoryContext old = MemoryContextSwitchTo(cxt);
  bytea *copy = DatumGetByteaPCopy(d);
  MemoryContextSwitchTo(old);
  return copy;
}

// A no-scroll cursor over query (no parameters).
inline Portal open_cursor(const char *query, bool read_only) {
  return SPI_cursor_open_with_args(nullptr, query, 0, nullptr, nullptr, nullptr, read_only,
                                   CURSOR_OPT_NO_SCROLL);
}

// Fetches up to n more rows of the cursor; returns how many (0 at the end). They are read with
// fetched(i) and column() until free_fetched().
inline uint64 fetch(Portal cursor, long n) {
  SPI_cursor_fetch(cursor, true, n);
  return SPI_processed;
}
inline HeapTuple fetched(uint64 i) { return SPI_tuptable->vals[i]; }
inline void free_fetched() { SPI_freetuptable(SPI_tuptable); }

inline void close_cursor(Portal cursor) { SPI_cursor_close(cursor); }

// The planner's estimate of the rows the cursor's query returns (0 when it has no plan), for
// progress reports.
inline double estimated_rows(Portal cursor) {
  if (cursor->stmts == NIL) return 0;
  PlannedStmt *ps = linitial_node(PlannedStmt, cursor->stmts);
  return ps->planTree != nullptr ? ps->planTree->plan_rows : 0;
}

// The materialised result of a set-returning function (RETURNS TABLE / SETOF): rows are put into
// its tuplestore.
struct ResultSet {
  Tuplestorestate *store;
  TupleDesc desc;
  void put(Datum *values, bool *nulls) const { tuplestore_putvalues(store, desc, values, nulls); }
};

// Sets up the function's materialised result (InitMaterializedSRF).
inline ResultSet materialize(FunctionCallInfo fcinfo) {
  InitMaterializedSRF(fcinfo, 0);
  auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  return ResultSet{rsinfo->setResult, rsinfo->setDesc};
}

}  // namespace lookalike::spi
