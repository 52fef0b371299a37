// Scale-out (remote_topk_pg.cpp): a foreign partition's top-k as ONE remote statement on
// postgres_fdw's own connection, sent to every shard of the query at once.
#pragma once

extern "C" {
#include "postgres.h"

#include "nodes/pathnodes.h"
}

namespace lookalike::scaleout {

// lookalike.shard_fanout: plan foreign partitions' top-k with the one-statement scan (on by
// default); off: postgres_fdw's own foreign scan with the LIMIT (a cursor per shard).
extern bool fanout;

// Defines lookalike.shard_fanout and registers the custom scan; called once, from init().
void remote_topk_init();

// Whether the one-statement scan can read `child` (a postgres_fdw partition whose WHERE clauses
// all run on the shard): no system column is needed.
bool remote_topk_applies(RelOptInfo *child);

// The path: `limited` is postgres_fdw's ordered foreign path of `child` carrying its "has limit"
// flag; postgres_fdw deparses the remote query (with LIMIT k, k = LIMIT + OFFSET) at plan time and
// this scan runs it. `group` ties together the partitions of one top-k (sent all at once).
Path *remote_topk_path(PlannerInfo *root, RelOptInfo *child, ForeignPath *limited, int group);

}  // namespace lookalike::scaleout
