// lookalike.so's entry: module magic and _PG_init. Each feature defines its own settings (GUCs)
// in its folder; _PG_init calls them all -- lookalike_image.so and lookalike_model.so load this
// library first, so their settings exist (and SET accepts them) before they are loaded -- then
// reserves the "lookalike" prefix and registers the planner hooks. Nothing else: it creates no
// thread and loads no model (models load lazily in each backend).
#include "common/guard_pg.hpp"
#include "image/settings_pg.hpp"
#include "index/hnsw_pg.hpp"
#include "model/settings_pg.hpp"
#include "scaleout/partition_topk_pg.hpp"
#include "vector/exact_scan_pg.hpp"
#include "vector/settings_pg.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

void _PG_init(void) {
  lookalike::vector::define_settings();
  lookalike::hnswpg::define_settings();
  lookalike::image::define_settings();
  lookalike::model::define_settings();
  lookalike::scaleout::init();
  MarkGUCPrefixReserved("lookalike");
  lookalike::exact_scan::register_planner_hook();
}
