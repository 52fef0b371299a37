// Scale-out (partition_topk_pg.cpp): top-k per partition for ORDER BY <embedding column> <op>
// <query> LIMIT k on a partitioned table whose partitions may be postgres_fdw foreign tables.
#pragma once

namespace lookalike::scaleout {

// lookalike.partition_topk: plan a top-k per partition (on by default).
extern bool enabled;

// Defines lookalike.partition_topk and installs the planner hooks; called once, from _PG_init.
void init();

}  // namespace lookalike::scaleout
