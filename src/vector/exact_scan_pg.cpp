// The exact top-k scan: a custom scan node that answers
//   SELECT ... FROM t [WHERE ...] ORDER BY t.e <op> <query> LIMIT k
// (op one of <=>, <->, <#> on embedding; <query> an expression that does not depend on the row)
// in one pass over the table: each visible row that passes the WHERE clause is measured against
// the query and kept in a bounded heap of the k best, with no per-row projection, sort tuple or
// function call. For cosine the query's norm is computed once (kernels::cosine_parts_fixed).
// Distances and their order are exactly the operator's: NaN (a zero vector under cosine) after
// every number, NULL after NaN (ORDER BY ... ASC NULLS LAST). The rows come out in that order;
// the target list (which may hold the distance itself) is computed for those k rows only.
//
// Planner side: a set_rel_pathlist hook offers the path when the query has the shape above, a
// constant LIMIT (root->limit_tuples, so no grouping, DISTINCT, window functions or set-returning
// functions), a single plain table or a partition of the query's single partitioned table (see
// src/scaleout/partition_topk_pg.cpp), no FOR UPDATE, no WITH TIES, and k rows fit in work_mem. It
// offers a serial path and a parallel-aware partial path (each participant keeps its own k best
// over its share of the blocks; Gather Merge merges them, the Limit above takes k). Costs are
// those of a sequential scan with the distance and one heap comparison per row, without the
// sort: PostgreSQL then chooses between serial and parallel as it does for a sequential scan.
// Setting lookalike.exact_scan = off withdraws the paths (PostgreSQL's own plan is used).
//
// C-style code over palloc'd memory (see docs/architecture.md): these frames own no C++ objects,
// so PostgreSQL errors may longjmp through them; the kernels called here do not throw.
#include <algorithm>
#include <cmath>

#include "common/guard_pg.hpp"
#include "vector/embedding_pg.hpp"
#include "vector/exact_scan_pg.hpp"
#include "vector/kernels.hpp"
#include "vector/topk.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/parallel.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_language_d.h"
#include "catalog/pg_operator_d.h"
#include "catalog/pg_proc.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/plancat.h"
#include "optimizer/restrictinfo.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"
#include "utils/spccache.h"
#include "utils/syscache.h"
}

namespace lookalike::exact_scan {

bool enabled = true;

namespace {

// The metric travels in the plan as the integer value of Metric (vector/metric.hpp).
constexpr const char *kName = "lookalike exact top-k";

set_rel_pathlist_hook_type prev_set_rel_pathlist = nullptr;

// ---- planner -------------------------------------------------------------------------------

// The metric of an operator's function when it is one of lookalike's distance functions (found
// by its C symbol in lookalike.so, so the schema the extension lives in does not matter), else -1.
int metric_of_function(Oid fn) {
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
  if (!HeapTupleIsValid(tup)) return -1;
  int metric = -1;
  Form_pg_proc proc = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
  if (proc->prolang == ClanguageId && proc->pronargs == 2) {
    bool null_bin, null_src;
    Datum bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &null_bin);
    Datum src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &null_src);
    if (!null_bin && !null_src) {
      char *b = TextDatumGetCString(bin), *s = TextDatumGetCString(src);
      const char *base = strrchr(b, '/');
      if (strcmp(base ? base + 1 : b, "lookalike") == 0) {
        if (strcmp(s, "embedding_cosine_distance") == 0) metric = int(Metric::kCosine);
        if (strcmp(s, "embedding_l2_distance") == 0) metric = int(Metric::kL2);
        if (strcmp(s, "embedding_negative_inner_product") == 0) metric = int(Metric::kInnerProduct);
      }
    }
  }
  ReleaseSysCache(tup);
  return metric;
}

struct Match {
  AttrNumber attno;
  int metric;
  Oid func;
  Expr *query;
};

// Is `e` <column of rel> <distance op> <row-independent expression> (either order)?
bool match_distance(RelOptInfo *rel, Expr *e, Match *m) {
  while (IsA(e, RelabelType)) e = reinterpret_cast<RelabelType *>(e)->arg;
  if (!IsA(e, OpExpr)) return false;
  OpExpr *op = reinterpret_cast<OpExpr *>(e);
  if (list_length(op->args) != 2) return false;
  const Oid func = get_opcode(op->opno);
  const int metric = metric_of_function(func);
  if (metric < 0) return false;
  for (int side = 0; side < 2; ++side) {
    Expr *col = static_cast<Expr *>(list_nth(op->args, side));
    Expr *other = static_cast<Expr *>(list_nth(op->args, 1 - side));
    while (IsA(col, RelabelType)) col = reinterpret_cast<RelabelType *>(col)->arg;
    if (!IsA(col, Var)) continue;
    Var *v = reinterpret_cast<Var *>(col);
    if (v->varno != static_cast<int>(rel->relid) || v->varlevelsup != 0 || v->varattno <= 0)
      continue;
    Node *o = reinterpret_cast<Node *>(other);
    if (contain_var_clause(o) || contain_volatile_functions(o) || contain_subplans(o)) continue;
    m->attno = v->varattno;
    m->metric = metric;
    m->func = func;
    m->query = other;
    return true;
  }
  return false;
}

// The query's single ORDER BY key, when it is ASC NULLS LAST on a lookalike distance over rel.
bool match_order(PlannerInfo *root, RelOptInfo *rel, Match *m) {
  if (list_length(root->query_pathkeys) != 1) return false;
  PathKey *pk = static_cast<PathKey *>(linitial(root->query_pathkeys));
  if (pk->pk_strategy != BTLessStrategyNumber || pk->pk_nulls_first) return false;
  if (get_opfamily_member(pk->pk_opfamily, FLOAT8OID, FLOAT8OID, BTLessStrategyNumber) !=
      Float8LessOperator)
    return false;
  EquivalenceClass *ec = pk->pk_eclass;
  if (ec->ec_has_volatile) return false;
  ListCell *lc;
  foreach (lc, ec->ec_members) {
    EquivalenceMember *em = static_cast<EquivalenceMember *>(lfirst(lc));
    if (match_distance(rel, em->em_expr, m)) return true;
  }
  return false;
}

// The parallel divisor of costsize.c (static there).
double parallel_divisor(int workers) {
  double divisor = workers;
  if (parallel_leader_participation) {
    double leader = 1.0 - 0.3 * workers;
    if (leader > 0) divisor += leader;
  }
  return divisor;
}

const CustomPathMethods *path_methods();
Node *create_state(CustomScan *);
const CustomScanMethods scan_methods = {kName, create_state};

void add_topk_path(PlannerInfo *root, RelOptInfo *rel, const Match &m, int k, int workers) {
  CustomPath *cp = makeNode(CustomPath);
  cp->path.pathtype = T_CustomScan;
  cp->path.parent = rel;
  cp->path.pathtarget = rel->reltarget;
  cp->path.param_info = nullptr;
  cp->path.parallel_aware = workers > 0;
  cp->path.parallel_safe = rel->consider_parallel;
  cp->path.parallel_workers = workers;
  cp->path.pathkeys = root->query_pathkeys;
  cp->flags = CUSTOMPATH_SUPPORT_PROJECTION;
  cp->methods = path_methods();
  cp->custom_private =
      list_make4(makeInteger(m.attno), makeInteger(m.metric), makeInteger(k), m.query);

  // A sequential scan's cost (every row read, the WHERE clause evaluated on each) plus, per row
  // that passes the WHERE clause, the distance function and one comparison with the heap's worst
  // entry; no sort.
  double spc_random, spc_seq;
  get_tablespace_page_costs(rel->reltablespace, &spc_random, &spc_seq);
  QualCost qual = rel->baserestrictcost;
  QualCost dist = {0, 0};
  add_function_cost(root, m.func, nullptr, &dist);
  Cost cpu_run = (cpu_tuple_cost + qual.per_tuple) * std::max(rel->tuples, 1.0) +
                 (dist.per_tuple + cpu_operator_cost) * std::max(rel->rows, 1.0);
  double out_rows = std::min<double>(k, std::max(rel->rows, 1.0));
  if (workers > 0) {
    const double divisor = parallel_divisor(workers);
    cpu_run /= divisor;
    out_rows = std::min<double>(k, std::max(rel->rows / divisor, 1.0));
  }
  cp->path.rows = clamp_row_est(out_rows);
  cp->path.startup_cost = qual.startup + spc_seq * rel->pages + cpu_run;
  cp->path.total_cost = cp->path.startup_cost + cpu_tuple_cost * cp->path.rows;
  if (workers > 0)
    add_partial_path(rel, &cp->path);
  else
    add_path(rel, &cp->path);
}

void set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte) {
  if (prev_set_rel_pathlist) prev_set_rel_pathlist(root, rel, rti, rte);
  // enable_seqscan = off withdraws it too: it reads the whole table like a sequential scan.
  if (!enabled || !enable_seqscan) return;
  Query *parse = root->parse;
  if (parse->commandType != CMD_SELECT || parse->rowMarks != NIL ||
      parse->limitOption == LIMIT_OPTION_WITH_TIES || parse->setOperations != nullptr)
    return;
  // root->limit_tuples is -1 unless a constant LIMIT bounds the rows this scan must deliver.
  if (!(root->limit_tuples >= 1.0) || root->limit_tuples > 1e6) return;
  // The query's only table, or a partition (or inheritance child) of it: a child that delivers
  // its own k best serves the Append or Merge Append above it, under the same LIMIT (the WHERE
  // clause is the child's own, nothing between it and the LIMIT drops rows).
  const bool only_table =
      rel->reloptkind == RELOPT_BASEREL && bms_equal(rel->relids, root->all_baserels);
  const bool child_of_only_table = rel->reloptkind == RELOPT_OTHER_MEMBER_REL &&
                                   bms_equal(rel->top_parent_relids, root->all_baserels);
  if (!only_table && !child_of_only_table) return;
  if (rte->rtekind != RTE_RELATION || rte->inh || rte->tablesample != nullptr) return;
  if (rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_MATVIEW) return;
  if (rel->lateral_relids != nullptr) return;
  ListCell *lc;
  foreach (lc, rel->baserestrictinfo) {
    RestrictInfo *ri = static_cast<RestrictInfo *>(lfirst(lc));
    if (contain_volatile_functions(reinterpret_cast<Node *>(ri->clause))) return;
  }
  Match m;
  if (!match_order(root, rel, &m)) return;
  const int k = static_cast<int>(root->limit_tuples);
  // The k kept rows are whole heap tuples (every column, not only those the query reads): they
  // must fit in work_mem.
  const double avg_tuple = rel->tuples > 0 ? rel->pages * double(BLCKSZ) / rel->tuples : 0.0;
  const double tuple_bytes = std::max(rel->reltarget->width + 64.0, avg_tuple);
  if (k * tuple_bytes > work_mem * 1024.0) return;

  add_topk_path(root, rel, m, k, 0);
  if (rel->consider_parallel && max_parallel_workers_per_gather > 0 &&
      is_parallel_safe(root, reinterpret_cast<Node *>(m.query))) {
    int workers = compute_parallel_worker(rel, rel->pages, -1, max_parallel_workers_per_gather);
    if (workers > 0) add_topk_path(root, rel, m, k, workers);
  }
}

Plan *plan_path(PlannerInfo *, RelOptInfo *rel, CustomPath *best_path, List *tlist, List *clauses,
                List *) {
  CustomScan *cs = makeNode(CustomScan);
  cs->scan.plan.targetlist = tlist;
  cs->scan.plan.qual = extract_actual_clauses(clauses, false);
  cs->scan.scanrelid = rel->relid;
  cs->flags = best_path->flags;
  List *p = best_path->custom_private;
  // The query expression goes to custom_exprs, where set_plan_references and the executor treat
  // it as an expression of this node; the rest is plain integers.
  cs->custom_exprs = list_make1(list_nth(p, 3));
  cs->custom_private = list_make3(list_nth(p, 0), list_nth(p, 1), list_nth(p, 2));
  cs->custom_scan_tlist = NIL;
  cs->methods = &scan_methods;
  return &cs->scan.plan;
}

// ---- executor ------------------------------------------------------------------------------

// One kept row. rank: 0 a number, 1 NaN, 2 NULL (the order of ORDER BY ... ASC NULLS LAST).
struct Entry {
  int rank;
  double dist;
  HeapTuple tuple;
};

inline bool worse(const Entry &a, const Entry &b) {  // a sorts after b
  return a.rank != b.rank ? a.rank > b.rank : a.dist > b.dist;
}

struct TopkState {
  CustomScanState css;
  AttrNumber attno;
  Metric metric;
  int k;
  ExprState *query_expr;
  ExprState *qual;              // the WHERE clause, compiled for any slot type
  TupleTableSlot *scan_slot;    // the table AM's slot, filled by the scan
  TableScanDesc scan;           // opened on first use
  ParallelTableScanDesc pscan;  // in shared memory, when parallel
  MemoryContext keep_cxt;       // copies of the kept tuples
  Entry *heap;                  // max-heap by worse(): the worst kept row on top
  int kept;
  int next;  // next row to return, once sorted
  bool done;
  int64 rows_measured;
};

void begin_scan(CustomScanState *node, EState *estate, int) {
  TopkState *st = reinterpret_cast<TopkState *>(node);
  CustomScan *cs = reinterpret_cast<CustomScan *>(node->ss.ps.plan);
  st->attno = static_cast<AttrNumber>(intVal(list_nth(cs->custom_private, 0)));
  st->metric = static_cast<Metric>(intVal(list_nth(cs->custom_private, 1)));
  st->k = intVal(list_nth(cs->custom_private, 2));
  st->query_expr = ExecInitExpr(static_cast<Expr *>(linitial(cs->custom_exprs)), &node->ss.ps);
  // The scan fills the table AM's own slot (a buffer heap tuple slot), not the node's virtual
  // scan slot: the WHERE clause is compiled again for a slot type that is not fixed.
  node->ss.ps.scanopsfixed = false;
  st->qual = ExecInitQual(cs->scan.plan.qual, &node->ss.ps);
  node->ss.ps.qual = nullptr;
  Relation rel = node->ss.ss_currentRelation;
  st->scan_slot = table_slot_create(rel, &estate->es_tupleTable);
  st->keep_cxt =
      AllocSetContextCreate(estate->es_query_cxt, "lookalike exact top-k", ALLOCSET_DEFAULT_SIZES);
  st->heap = static_cast<Entry *>(palloc(sizeof(Entry) * (st->k + 1)));
  st->kept = st->next = 0;
  st->done = false;
  st->scan = nullptr;
  st->pscan = nullptr;
  st->rows_measured = 0;
}

// Prefetching for heap tables. The scan is bound by memory latency, not arithmetic: without it
// the first touch of every row and the shared buffer lookup of every page stall the kernel. On
// entering page b, the buffer of page b + 2 is looked up (PrefetchBuffer: its mapping entry is
// then warm for heapgetpage, or a read is advised if it is not in shared buffers), and while the
// rows of page b are measured, the memory of page b + 1 (looked up one page earlier) is
// prefetched in equal slices, one per row (all at once stalls on the CPU's limit of outstanding
// misses). Each step was measured against a buffer pool whose pages lie in random order (the
// figures: docs/reference.md, "Exact top-k"). Only hints: no pin is taken, and a buffer reused
// meanwhile costs nothing but a wasted prefetch.
struct Prefetcher {
  Buffer current = InvalidBuffer;
  const char *next = nullptr;      // memory of the next page's buffer, if it is in shared buffers
  int line = 0;                    // next cache line of it to prefetch
  Buffer pending = InvalidBuffer;  // the buffer of the page after next, looked up early
  BlockNumber pending_block = InvalidBlockNumber;

  void on_row(Relation rel, HeapScanDesc hs) {
    constexpr int kLines = BLCKSZ / 64;
    if (hs->rs_cbuf != current) {
      current = hs->rs_cbuf;
      next = BufferIsValid(pending) && pending_block == (hs->rs_cblock + 1) % hs->rs_nblocks
                 ? static_cast<const char *>(BufferGetPage(pending))
                 : nullptr;
      line = 0;
      pending = InvalidBuffer;
      if (hs->rs_nblocks > 2) {
        pending_block = (hs->rs_cblock + 2) % hs->rs_nblocks;
        pending = PrefetchBuffer(rel, MAIN_FORKNUM, pending_block).recent_buffer;
      }
    }
    if (next == nullptr || line >= kLines) return;
    const int per_row = (kLines + std::max(hs->rs_ntuples, 1) - 1) / std::max(hs->rs_ntuples, 1);
    const int end = std::min(kLines, line + per_row);
    for (; line < end; ++line) __builtin_prefetch(next + 64 * line);
  }
};

void sift_up(Entry *h, int i) {
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!worse(h[i], h[parent])) break;
    std::swap(h[i], h[parent]);
    i = parent;
  }
}

void sift_down(Entry *h, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, w = i;
    if (l < n && worse(h[l], h[w])) w = l;
    if (r < n && worse(h[r], h[w])) w = r;
    if (w == i) return;
    std::swap(h[i], h[w]);
    i = w;
  }
}

// Scans the table (or this participant's share of it) and keeps the k best rows.
void compute_topk(TopkState *st) {
  ScanState *ss = &st->css.ss;
  EState *estate = ss->ps.state;
  ExprContext *econtext = ss->ps.ps_ExprContext;
  Relation rel = ss->ss_currentRelation;

  bool query_null;
  ResetExprContext(econtext);
  Datum qd = ExecEvalExprSwitchContext(st->query_expr, econtext, &query_null);
  Embedding *query = nullptr;
  double qq = 0;
  if (!query_null) {
    // A copy in the node's memory: the per-row resets below must not free it.
    MemoryContext old = MemoryContextSwitchTo(st->keep_cxt);
    query = reinterpret_cast<Embedding *>(PG_DETOAST_DATUM_COPY(qd));
    MemoryContextSwitchTo(old);
    if (st->metric == Metric::kCosine)
      qq = kernels::cosine_parts(query->x, query->x, query->dim).bb;
  }

  if (st->scan == nullptr)
    st->scan = st->pscan ? table_beginscan_parallel(rel, st->pscan)
                         : table_beginscan(rel, estate->es_snapshot, 0, nullptr);
  TupleTableSlot *slot = st->scan_slot;
  Entry *heap = st->heap;
  const int k = st->k;
  int n = 0;
  const bool is_heap = rel->rd_tableam == GetHeapamTableAmRoutine();
  Prefetcher prefetcher;
  while (table_scan_getnextslot(st->scan, ForwardScanDirection, slot)) {
    CHECK_FOR_INTERRUPTS();
    if (is_heap) prefetcher.on_row(rel, reinterpret_cast<HeapScanDesc>(st->scan));
    ResetExprContext(econtext);
    econtext->ecxt_scantuple = slot;
    if (st->qual != nullptr && !ExecQual(st->qual, econtext)) continue;
    Entry e{2, 0.0, nullptr};
    bool isnull;
    Datum d = slot_getattr(slot, st->attno, &isnull);
    if (!isnull && query != nullptr) {
      MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
      Embedding *x = datum_get_embedding(d);
      check_same_dims(x, query);
      MemoryContextSwitchTo(old);
      st->rows_measured++;
      // The operator's distance (topk::distance); cosine with the query's b.b computed once.
      e.dist =
          st->metric == Metric::kCosine
              ? kernels::cosine_distance(kernels::cosine_parts_fixed(x->x, query->x, x->dim, qq))
              : topk::distance(st->metric, x->x, query->x, x->dim);
      e.rank = std::isnan(e.dist) ? 1 : 0;
    }
    if (n == k && !worse(heap[0], e)) continue;  // not better than the worst kept row
    MemoryContext old = MemoryContextSwitchTo(st->keep_cxt);
    e.tuple = ExecCopySlotHeapTuple(slot);
    MemoryContextSwitchTo(old);
    if (n < k) {
      heap[n] = e;
      sift_up(heap, n++);
    } else {
      heap_freetuple(heap[0].tuple);
      heap[0] = e;
      sift_down(heap, n, 0);
    }
  }
  ResetExprContext(econtext);
  // Best first. Equal keys keep no particular order, as in a sort.
  std::sort(heap, heap + n, [](const Entry &a, const Entry &b) { return worse(b, a); });
  st->kept = n;
  st->next = 0;
  st->done = true;
}

TupleTableSlot *exec_scan(CustomScanState *node) {
  TopkState *st = reinterpret_cast<TopkState *>(node);
  if (!st->done) compute_topk(st);
  TupleTableSlot *out = node->ss.ss_ScanTupleSlot;
  if (st->next >= st->kept) return ExecClearTuple(out);
  ExecForceStoreHeapTuple(st->heap[st->next++].tuple, out, false);
  ProjectionInfo *proj = node->ss.ps.ps_ProjInfo;
  if (proj == nullptr) return out;
  ExprContext *econtext = node->ss.ps.ps_ExprContext;
  ResetExprContext(econtext);
  econtext->ecxt_scantuple = out;
  return ExecProject(proj);
}

void end_scan(CustomScanState *node) {
  TopkState *st = reinterpret_cast<TopkState *>(node);
  if (st->scan != nullptr) table_endscan(st->scan);
  st->scan = nullptr;
  ExecClearTuple(st->scan_slot);
  MemoryContextDelete(st->keep_cxt);
}

void rescan(CustomScanState *node) {
  TopkState *st = reinterpret_cast<TopkState *>(node);
  ExecClearTuple(node->ss.ss_ScanTupleSlot);
  ExecClearTuple(st->scan_slot);
  MemoryContextReset(st->keep_cxt);
  st->kept = st->next = 0;
  st->done = false;
  if (st->scan != nullptr) table_rescan(st->scan, nullptr);
}

Size estimate_dsm(CustomScanState *node, ParallelContext *) {
  return table_parallelscan_estimate(node->ss.ss_currentRelation, node->ss.ps.state->es_snapshot);
}

void initialize_dsm(CustomScanState *node, ParallelContext *, void *coordinate) {
  TopkState *st = reinterpret_cast<TopkState *>(node);
  st->pscan = static_cast<ParallelTableScanDesc>(coordinate);
  table_parallelscan_initialize(node->ss.ss_currentRelation, st->pscan,
                                node->ss.ps.state->es_snapshot);
}

void reinitialize_dsm(CustomScanState *node, ParallelContext *, void *coordinate) {
  table_parallelscan_reinitialize(node->ss.ss_currentRelation,
                                  static_cast<ParallelTableScanDesc>(coordinate));
}

void initialize_worker(CustomScanState *node, shm_toc *, void *coordinate) {
  reinterpret_cast<TopkState *>(node)->pscan = static_cast<ParallelTableScanDesc>(coordinate);
}

void explain_scan(CustomScanState *node, List *, ExplainState *es) {
  TopkState *st = reinterpret_cast<TopkState *>(node);
  CustomScan *cs = reinterpret_cast<CustomScan *>(node->ss.ps.plan);
  ExplainPropertyText("Distance", metric_name(st->metric), es);
  ExplainPropertyInteger("Rows Kept", nullptr, intVal(list_nth(cs->custom_private, 2)), es);
  // Rows this process measured (a parallel scan's workers count their own, not shown here).
  if (es->analyze && !cs->scan.plan.parallel_aware)
    ExplainPropertyInteger("Rows Measured", nullptr, st->rows_measured, es);
}

const CustomExecMethods exec_methods = {
    kName,          begin_scan,       exec_scan,         end_scan,
    rescan,         nullptr,          nullptr,           estimate_dsm,
    initialize_dsm, reinitialize_dsm, initialize_worker, nullptr,
    explain_scan};

Node *create_state(CustomScan *) {
  TopkState *st = static_cast<TopkState *>(palloc0(sizeof(TopkState)));
  NodeSetTag(st, T_CustomScanState);
  st->css.methods = &exec_methods;
  return reinterpret_cast<Node *>(st);
}

const CustomPathMethods path_methods_value = {kName, plan_path, nullptr};
const CustomPathMethods *path_methods() { return &path_methods_value; }

}  // namespace

int distance_metric(Oid func) { return metric_of_function(func); }

bool order_is_distance(PlannerInfo *root, RelOptInfo *rel) {
  Match m;
  return match_order(root, rel, &m);
}

void register_planner_hook() {
  RegisterCustomScanMethods(&scan_methods);
  prev_set_rel_pathlist = set_rel_pathlist_hook;
  set_rel_pathlist_hook = set_rel_pathlist;
}

}  // namespace lookalike::exact_scan

// Planner support function of the distance functions behind <=>, <-> and <#>. The planner calls
// it while simplifying expressions, before scans are planned: that call loads lookalike.so, whose
// _PG_init installs the hook above, so the exact top-k scan is offered from the first query of a
// session (a query whose only embedding is a parameter or a sub-select would otherwise be planned
// before the library is loaded). It answers no request: NULL means nothing to simplify.
LOOKALIKE_FUNCTION(embedding_distance_support) { PG_RETURN_POINTER(nullptr); }
