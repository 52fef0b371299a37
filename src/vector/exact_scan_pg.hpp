// The exact top-k scan (exact_scan_pg.cpp): a custom scan the planner may choose for
// `ORDER BY col <op> query LIMIT k` over one table.
#pragma once

namespace lookalike::exact_scan {

// lookalike.exact_scan: offer the custom scan to the planner.
extern bool enabled;

// Registers the custom scan and the planner hook; called once, from _PG_init.
void register_planner_hook();

}  // namespace lookalike::exact_scan
