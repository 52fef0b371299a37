// The extension's shared library: module magic and _PG_init. _PG_init only defines settings
// (GUCs); it creates no thread and loads no model (models load lazily in each backend).
#include "common/guard_pg.hpp"
#include "index/hnsw_pg.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

void _PG_init(void) {
  // Index (src/index/): the lookalike_hnsw access method.
  lookalike::hnswpg::init_reloptions();
  DefineCustomIntVariable(
      "lookalike.ef_search", "Size of the candidate list of a lookalike_hnsw index scan.",
      "Larger finds more of the true nearest neighbours, slower.", &lookalike::hnswpg::ef_search,
      40, 1, 1000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("lookalike.max_scan_tuples",
                          "Most elements one lookalike_hnsw index scan visits.",
                          "Bounds the search that continues past ef_search when a WHERE clause "
                          "filters out rows; the scan ends when it is reached.",
                          &lookalike::hnswpg::max_scan_tuples, 20000, 1, INT_MAX, PGC_USERSET, 0,
                          nullptr, nullptr, nullptr);
  MarkGUCPrefixReserved("lookalike");
}
