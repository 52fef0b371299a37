// The exact top-k scan (exact_scan_pg.cpp): a custom scan the planner may choose for
// `ORDER BY col <op> query LIMIT k` over one table.
#pragma once

#include "common/pg.hpp"

struct PlannerInfo;
struct RelOptInfo;

namespace lookalike::exact_scan {

// lookalike.exact_scan: offer the custom scan to the planner.
extern bool enabled;

// The metric (the integer value of Metric, vector/metric.hpp) of one of lookalike's distance
// functions (<=>, <->, <#> behind the operator), else -1.
int distance_metric(Oid func);

// Is the query's single ORDER BY key `<column of rel> <op> <row-independent query>` ASC NULLS
// LAST, op one of lookalike's distance operators?
bool order_is_distance(PlannerInfo *root, RelOptInfo *rel);

// Registers the custom scan and the planner hook; called once, from _PG_init.
void register_planner_hook();

}  // namespace lookalike::exact_scan
