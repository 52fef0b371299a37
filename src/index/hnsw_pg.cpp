// lookalike_hnsw, the access method's entry: the handler, the index options (reloptions), the
// planner's cost estimate, the operator classes' support functions and the search settings.
// The build, insert, scan and VACUUM callbacks are in hnsw_build_pg.cpp, hnsw_insert_pg.cpp,
// hnsw_scan_pg.cpp and hnsw_vacuum_pg.cpp; pages and the on-disk search in hnsw_utils_pg.cpp.
#include <cfloat>
#include <cmath>

#include "index/hnsw_pg.hpp"

extern "C" {
#include "access/genam.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "optimizer/optimizer.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"
}

using namespace lookalike;
using namespace lookalike::hnswpg;

namespace lookalike::hnswpg {

int ef_search = kDefaultEfSearch;
int max_scan_tuples = kDefaultMaxScanTuples;
int build_threads = 0;

static relopt_kind relopt_kind_hnsw;

void define_settings() {
  relopt_kind_hnsw = add_reloption_kind();
  add_int_reloption(relopt_kind_hnsw, "m", "Max number of connections per element and layer",
                    kDefaultM, kMinM, kMaxM, AccessExclusiveLock);
  add_int_reloption(relopt_kind_hnsw, "ef_construction",
                    "Size of the candidate list when building the graph", kDefaultEfConstruction,
                    kMinEfConstruction, kMaxEfConstruction, AccessExclusiveLock);
  DefineCustomIntVariable(
      "lookalike.ef_search", "Size of the candidate list of a lookalike_hnsw index scan.",
      "Larger finds more of the true nearest neighbours, slower.", &ef_search, kDefaultEfSearch, 1,
      kMaxEfSearch, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("lookalike.max_scan_tuples",
                          "Most elements one lookalike_hnsw index scan visits.",
                          "Bounds the search that continues past ef_search when a WHERE clause "
                          "filters out rows; the scan ends when it is reached.",
                          &max_scan_tuples, kDefaultMaxScanTuples, 1, INT_MAX, PGC_USERSET, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "lookalike.build_threads", "Threads that build a lookalike_hnsw graph in memory.",
      "0 (the default) means 1 + max_parallel_maintenance_workers. Never more than the CPUs "
      "online; threads exist only during CREATE INDEX / REINDEX.",
      &build_threads, 0, 0, kMaxBuildThreads, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

int option_m(Relation index) {
  auto *o = reinterpret_cast<Options *>(index->rd_options);
  return o ? o->m : kDefaultM;
}

int option_ef_construction(Relation index) {
  auto *o = reinterpret_cast<Options *>(index->rd_options);
  return o ? o->ef_construction : kDefaultEfConstruction;
}

Metric index_metric(Relation index) {
  FmgrInfo *proc = index_getprocinfo(index, 1, 1);
  int32 v = DatumGetInt32(FunctionCall1(proc, PointerGetDatum(nullptr)));
  if (!is_metric(v))
    ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                    errmsg("invalid metric %d from the support function of lookalike_hnsw", v)));
  return static_cast<Metric>(v);
}

}  // namespace lookalike::hnswpg

// ---- AM routine ----------------------------------------------------------------------------

extern "C" {

static bytea *hnsw_options(Datum reloptions, bool validate) {
  static const relopt_parse_elt tab[] = {
      {"m", RELOPT_TYPE_INT, offsetof(Options, m)},
      {"ef_construction", RELOPT_TYPE_INT, offsetof(Options, ef_construction)},
  };
  return static_cast<bytea *>(build_reloptions(reloptions, validate, relopt_kind_hnsw,
                                               sizeof(Options), tab, lengthof(tab)));
}

static char *hnsw_buildphasename(int64 phase) {
  switch (phase) {
    case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
      return const_cast<char *>("initializing");
    case kPhaseLoad:
      return const_cast<char *>("loading tuples");
    case kPhaseRefine:
      return const_cast<char *>("refining graph (second pass)");
    case kPhaseWrite:
      return const_cast<char *>("writing pages");
    default:
      return nullptr;
  }
}

static bool hnsw_validate(Oid) { return true; }

// Planner cost: an ordered scan visits about ef_search * 2m elements in a few random pages per
// layer; without an ORDER BY on the distance the index is useless (infinite cost).
static void hnsw_costestimate(PlannerInfo *root, IndexPath *path, double loop_count, Cost *startup,
                              Cost *total, Selectivity *selectivity, double *correlation,
                              double *pages) {
  if (path->indexorderbys == NIL) {
    *startup = get_float8_infinity();
    *total = get_float8_infinity();
    *selectivity = 0;
    *correlation = 0;
    *pages = 0;
    return;
  }
  GenericCosts costs;
  MemSet(&costs, 0, sizeof(costs));
  genericcostestimate(root, path, loop_count, &costs);
  double ntuples = Max(path->indexinfo->tuples, 1.0);
  int m = kDefaultM;  // reloptions are not at hand here; the default is a fair estimate
  double visited = Min(ntuples, static_cast<double>(ef_search) * 2 * m *
                                    Max(1.0, std::log(ntuples) / std::log(1.0 * m)) / 4);
  double ratio = visited / ntuples;
  double spc_random_page_cost;
  get_tablespace_page_costs(path->indexinfo->reltablespace, &spc_random_page_cost, nullptr);
  Cost c = ratio * costs.numIndexPages * spc_random_page_cost +
           visited * (cpu_operator_cost * 4 + cpu_index_tuple_cost);
  *startup = c;
  *total = c;
  *selectivity = 1;
  *correlation = 0;
  *pages = ratio * costs.numIndexPages;
}

}  // extern "C"

LOOKALIKE_FUNCTION(lookalike_hnsw_handler) {
  IndexAmRoutine *am = makeNode(IndexAmRoutine);
  am->amstrategies = 0;
  am->amsupport = 1;
  am->amoptsprocnum = 0;
  am->amcanorder = false;
  am->amcanorderbyop = true;
  am->amcanbackward = false;
  am->amcanunique = false;
  am->amcanmulticol = false;
  am->amoptionalkey = true;
  am->amsearcharray = false;
  am->amsearchnulls = false;
  am->amstorage = false;
  am->amclusterable = false;
  am->ampredlocks = false;
  am->amcanparallel = false;
  am->amcaninclude = false;
  am->amusemaintenanceworkmem = false;
  am->amparallelvacuumoptions = VACUUM_OPTION_PARALLEL_BULKDEL;
  am->amkeytype = InvalidOid;
  am->ambuild = lookalike_hnsw_build;
  am->ambuildempty = lookalike_hnsw_buildempty;
  am->aminsert = lookalike_hnsw_insert;
  am->ambulkdelete = lookalike_hnsw_bulkdelete;
  am->amvacuumcleanup = lookalike_hnsw_vacuumcleanup;
  am->amcanreturn = nullptr;
  am->amcostestimate = hnsw_costestimate;
  am->amoptions = hnsw_options;
  am->amproperty = nullptr;
  am->ambuildphasename = hnsw_buildphasename;
  am->amvalidate = hnsw_validate;
  am->amadjustmembers = nullptr;
  am->ambeginscan = lookalike_hnsw_beginscan;
  am->amrescan = lookalike_hnsw_rescan;
  am->amgettuple = lookalike_hnsw_gettuple;
  am->amgetbitmap = nullptr;
  am->amendscan = lookalike_hnsw_endscan;
  am->ammarkpos = nullptr;
  am->amrestrpos = nullptr;
  am->amestimateparallelscan = nullptr;
  am->aminitparallelscan = nullptr;
  am->amparallelrescan = nullptr;
  PG_RETURN_POINTER(am);
}

// Support function 1 of each operator class: the integer value of its Metric.
LOOKALIKE_FUNCTION(lookalike_hnsw_metric_l2) { PG_RETURN_INT32(int(Metric::kL2)); }
LOOKALIKE_FUNCTION(lookalike_hnsw_metric_ip) { PG_RETURN_INT32(int(Metric::kInnerProduct)); }
LOOKALIKE_FUNCTION(lookalike_hnsw_metric_cosine) { PG_RETURN_INT32(int(Metric::kCosine)); }
