// Scale-out: exact top-k over partitioned tables whose partitions are local tables or postgres_fdw
// foreign tables on other servers (shards), for the plain query
//   SELECT ... FROM parent [WHERE ...] ORDER BY parent.e <op> <query> LIMIT k
// (op one of <=>, <->, <#>). See docs/scale-out.md for the set-up and the design.
//
// PostgreSQL's own plan for such a query is a Merge Append (or Append + Sort) over the partitions
// with the LIMIT on top: a foreign partition is asked for ORDER BY without LIMIT (postgres_fdw
// ships LIMIT only when the foreign table is the whole query), so every shard sorts all its rows
// or streams its index far past k, and a Merge Append reads the shards one after another.
// lookalike instead plans
//   Limit k <- Sort (top-k heap) <- Append (async) <- per partition: its own k best
// where a foreign partition's k best is one remote query `... ORDER BY e <op> $q LIMIT k` (the
// shard answers it with lookalike's exact top-k scan or its lookalike_hnsw index), and a local
// partition's is the cheapest of: the exact top-k scan, an index scan + Limit, a bounded sort.
// The Append runs the foreign scans concurrently (async_capable servers), and the Sort ranks at
// most k rows per partition. The k best of the union of each partition's k best are the k best of
// the table: the answer is the single table's (equal distances: any of the tied rows, as there).
//
// Three planner pieces:
//  1. planner_hook, before planning, on a query of the shape above over a partitioned or foreign
//     table: a query vector written as an expression (image_embedding(...), project(...), a cast)
//     becomes a sub-select, i.e. an initplan evaluated once on the coordinator whose value is
//     shipped as a parameter (a STABLE function would otherwise stop postgres_fdw from shipping
//     the ORDER BY at all); and, when foreign tables are involved, the query vector is wrapped in
//     with_search_settings(q, ef_search, max_scan_tuples), whose two settings are initplans of
//     current_setting(): the call is shipped with the ORDER BY and sets the coordinator's
//     lookalike.ef_search and lookalike.max_scan_tuples on each shard for this query.
//  2. create_upper_paths_hook, stage UPPERREL_ORDERED, input rel a partitioned table: builds the
//     path above and makes it the only ordered path (the per-partition bound is never more work
//     than what it replaces).
//  3. The exact top-k scan's own hook (src/vector/exact_scan_pg.cpp) offers its path on each
//     partition, not only on a plain table.
// A foreign partition's path is postgres_fdw's own ordered ForeignPath, copied with
// postgres_fdw's "has limit" flag (its fdw_private for upper-rel paths: has_final_sort,
// has_limit), so that postgres_fdw deparses the LIMIT of this query itself. That is only done
// when every WHERE clause runs on the shard (postgres_fdw's is_foreign_expr) and the query has no
// OFFSET; otherwise the partition is read with a local Limit on its ordered foreign scan.
// Setting lookalike.partition_topk = off withdraws all three pieces' effects of this file.
//
// C-style code over palloc'd memory: these frames own no C++ objects, so PostgreSQL errors may
// longjmp through them.
#include "common/guard_pg.hpp"
#include "index/hnsw_pg.hpp"
#include "scaleout/partition_topk_pg.hpp"
#include "scaleout/remote_topk_pg.hpp"
#include "vector/exact_scan_pg.hpp"

extern "C" {
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_operator_d.h"
#include "executor/executor.h"
#include "executor/nodeSubplan.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"
}

namespace lookalike::scaleout {

bool enabled = true;

namespace {

planner_hook_type prev_planner = nullptr;
create_upper_paths_hook_type prev_upper_paths = nullptr;

// ---- 1. the query vector: once, on the coordinator; the search settings: to every shard -----

// Does the expression read anything of a row (a Var of any query level, a correlated
// sub-select), or hold an aggregate or window function?
bool reads_rows(Node *n, void *) {
  if (n == nullptr) return false;
  if (IsA(n, Var) || IsA(n, PlaceHolderVar) || IsA(n, Aggref) || IsA(n, WindowFunc) ||
      IsA(n, GroupingFunc))
    return true;
  if (IsA(n, SubLink)) {
    SubLink *link = castNode(SubLink, n);
    return link->subLinkType != EXPR_SUBLINK || contain_vars_of_level(link->subselect, 1);
  }
  return expression_tree_walker(
      n, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(reads_rows)), nullptr);
}

// The query's shape: one table (partitioned or foreign), ORDER BY <col> <op> <query> ASC NULLS
// LAST, LIMIT. Returns the list cell of the operator's query operand, or nullptr.
ListCell *query_operand(Query *parse, RangeTblEntry **rte_out) {
  if (parse->commandType != CMD_SELECT || parse->utilityStmt != nullptr ||
      parse->setOperations != nullptr || parse->rowMarks != NIL || parse->hasAggs ||
      parse->groupClause != NIL || parse->groupingSets != NIL || parse->havingQual != nullptr ||
      parse->hasWindowFuncs || parse->distinctClause != NIL || parse->hasTargetSRFs ||
      parse->limitCount == nullptr || parse->limitOption != LIMIT_OPTION_COUNT ||
      list_length(parse->sortClause) != 1)
    return nullptr;
  FromExpr *jt = parse->jointree;
  if (jt == nullptr || list_length(jt->fromlist) != 1 || !IsA(linitial(jt->fromlist), RangeTblRef))
    return nullptr;
  const int rti = castNode(RangeTblRef, linitial(jt->fromlist))->rtindex;
  RangeTblEntry *rte = rt_fetch(rti, parse->rtable);
  if (rte->rtekind != RTE_RELATION || rte->tablesample != nullptr ||
      (rte->relkind != RELKIND_PARTITIONED_TABLE && rte->relkind != RELKIND_FOREIGN_TABLE))
    return nullptr;
  SortGroupClause *sc = linitial_node(SortGroupClause, parse->sortClause);
  if (sc->sortop != Float8LessOperator || sc->nulls_first) return nullptr;
  TargetEntry *tle = get_sortgroupclause_tle(sc, parse->targetList);
  Expr *e = tle->expr;
  while (IsA(e, RelabelType)) e = castNode(RelabelType, e)->arg;
  if (!IsA(e, OpExpr)) return nullptr;
  OpExpr *op = castNode(OpExpr, e);
  if (list_length(op->args) != 2 || exact_scan::distance_metric(get_opcode(op->opno)) < 0)
    return nullptr;
  for (int side = 0; side < 2; ++side) {
    Expr *col = static_cast<Expr *>(list_nth(op->args, side));
    while (IsA(col, RelabelType)) col = castNode(RelabelType, col)->arg;
    if (!IsA(col, Var)) continue;
    Var *v = castNode(Var, col);
    if (v->varno != rti || v->varlevelsup != 0 || v->varattno <= 0) continue;
    ListCell *other = list_nth_cell(op->args, 1 - side);
    Node *q = static_cast<Node *>(lfirst(other));
    // The query may name an outer query's row (a correlated sub-query), not this one's.
    if (contain_vars_of_level(q, 0) || contain_volatile_functions(q)) continue;
    *rte_out = rte;
    return other;
  }
  return nullptr;
}

// (SELECT x): an uncorrelated scalar sub-select, which the planner turns into an initplan run
// once per execution; its value is a parameter that postgres_fdw ships.
Expr *as_initplan(Query *parse, Expr *x) {
  Query *sub = makeNode(Query);
  sub->commandType = CMD_SELECT;
  sub->querySource = QSRC_ORIGINAL;
  sub->canSetTag = true;
  sub->jointree = makeFromExpr(NIL, nullptr);
  sub->hasSubLinks = checkExprHasSubLink(reinterpret_cast<Node *>(x));
  sub->targetList = list_make1(makeTargetEntry(x, 1, pstrdup("query"), false));
  SubLink *link = makeNode(SubLink);
  link->subLinkType = EXPR_SUBLINK;
  link->subLinkId = 0;
  link->testexpr = nullptr;
  link->operName = NIL;
  link->subselect = reinterpret_cast<Node *>(sub);
  link->location = -1;
  parse->hasSubLinks = true;
  return reinterpret_cast<Expr *>(link);
}

// (SELECT current_setting(name)::integer)
Expr *setting_initplan(Query *parse, const char *name) {
  Const *arg =
      makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1, CStringGetTextDatum(name), false, false);
  FuncExpr *get = makeFuncExpr(F_CURRENT_SETTING_TEXT, TEXTOID, list_make1(arg), InvalidOid,
                               DEFAULT_COLLATION_OID, COERCE_EXPLICIT_CALL);
  CoerceViaIO *cast = makeNode(CoerceViaIO);
  cast->arg = reinterpret_cast<Expr *>(get);
  cast->resulttype = INT4OID;
  cast->resultcollid = InvalidOid;
  cast->coerceformat = COERCE_EXPLICIT_CAST;
  cast->location = -1;
  return as_initplan(parse, reinterpret_cast<Expr *>(cast));
}

bool involves_foreign_tables(RangeTblEntry *rte) {
  if (rte->relkind == RELKIND_FOREIGN_TABLE) return true;
  List *rels = find_all_inheritors(rte->relid, rte->rellockmode, nullptr);
  ListCell *lc;
  foreach (lc, rels)
    if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE) return true;
  return false;
}

// with_search_settings(embedding, integer, integer) in the schema of the distance operator's
// function (the extension's schema), or InvalidOid (an older installed version).
Oid settings_function(Oid opno, Oid embedding_type) {
  Oid nsp = get_func_namespace(get_opcode(opno));
  List *name =
      list_make2(makeString(get_namespace_name(nsp)), makeString(pstrdup("with_search_settings")));
  Oid args[3] = {embedding_type, INT4OID, INT4OID};
  return LookupFuncName(name, 3, args, true);
}

void rewrite_query(Query *parse) {
  RangeTblEntry *rte = nullptr;
  ListCell *cell = query_operand(parse, &rte);
  if (cell == nullptr) return;
  Expr *q = static_cast<Expr *>(lfirst(cell));
  // A constant or parameter stays as it is, and so does an outer query's column (a parameter
  // per outer row); anything else is computed once, in an initplan.
  Node *folded = eval_const_expressions(nullptr, static_cast<Node *>(copyObjectImpl(q)));
  const bool foreign = involves_foreign_tables(rte);
  // With foreign tables a constant is an initplan too: it is then a parameter of the remote
  // statement, whose text is the same for every query vector, so that the shards prepare it once
  // (remote_topk_pg.cpp) instead of parsing a new statement for each literal.
  if ((!IsA(folded, Const) || foreign) && !IsA(folded, Param) && !IsA(folded, SubLink) &&
      !reads_rows(folded, nullptr))
    q = as_initplan(parse, q);
  if (foreign) {
    SortGroupClause *sc = linitial_node(SortGroupClause, parse->sortClause);
    Expr *e = get_sortgroupclause_tle(sc, parse->targetList)->expr;
    while (IsA(e, RelabelType)) e = castNode(RelabelType, e)->arg;
    const Oid type = exprType(reinterpret_cast<Node *>(q));
    const Oid fn = settings_function(castNode(OpExpr, e)->opno, type);
    if (OidIsValid(fn))
      q = reinterpret_cast<Expr *>(
          makeFuncExpr(fn, type,
                       list_make3(q, setting_initplan(parse, "lookalike.ef_search"),
                                  setting_initplan(parse, "lookalike.max_scan_tuples")),
                       InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL));
  }
  lfirst(cell) = q;
}

// Every query level: the statement, its sub-selects, FROM-clause subqueries and CTEs.
bool rewrite_all(Node *n, void *) {
  if (n == nullptr) return false;
  const auto walker = reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(rewrite_all));
  if (IsA(n, Query)) {
    Query *q = castNode(Query, n);
    rewrite_query(q);
    return query_tree_walker(q, walker, nullptr, 0);
  }
  return expression_tree_walker(n, walker, nullptr);
}

PlannedStmt *planner(Query *parse, const char *query_string, int cursor_options,
                     ParamListInfo bound_params) {
  if (enabled) rewrite_all(reinterpret_cast<Node *>(parse), nullptr);
  return prev_planner ? prev_planner(parse, query_string, cursor_options, bound_params)
                      : standard_planner(parse, query_string, cursor_options, bound_params);
}

// ---- 2. per-partition top-k ----------------------------------------------------------------

bool is_postgres_fdw(RelOptInfo *rel) {
  if (rel->fdwroutine == nullptr || !OidIsValid(rel->serverid)) return false;
  ForeignServer *server = GetForeignServer(rel->serverid);
  ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);
  if (!OidIsValid(fdw->fdwhandler)) return false;
  char *handler = get_func_name(fdw->fdwhandler);
  return handler != nullptr && strcmp(handler, "postgres_fdw_handler") == 0;
}

using IsForeignExpr = bool (*)(PlannerInfo *, RelOptInfo *, Expr *);

// postgres_fdw's ordered scan of the partition, made to ship this query's LIMIT too; run by
// lookalike's one-statement scan (remote_topk_pg.cpp) when lookalike.shard_fanout is on, which
// also ships LIMIT + OFFSET for a query with an OFFSET.
Path *foreign_topk_path(PlannerInfo *root, RelOptInfo *child, double k, int group) {
  Query *parse = root->parse;
  const bool one_statement = remote_topk_applies(child);
  if ((parse->limitOffset != nullptr && !one_statement) || parse->limitCount == nullptr ||
      !IsA(parse->limitCount, Const))
    return nullptr;
  // A LIMIT on the shard is only right when the shard applies the whole WHERE clause.
  // Looked up once per backend: load_external_function stats the library file on every call.
  static IsForeignExpr is_foreign_expr = nullptr;
  if (is_foreign_expr == nullptr)
    is_foreign_expr = reinterpret_cast<IsForeignExpr>(
        load_external_function("$libdir/postgres_fdw", "is_foreign_expr", false, nullptr));
  if (is_foreign_expr == nullptr) return nullptr;
  ListCell *lc;
  foreach (lc, child->baserestrictinfo) {
    RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
    if (!ri->pseudoconstant && !is_foreign_expr(root, child, ri->clause)) return nullptr;
  }
  foreach (lc, child->pathlist) {
    Path *path = static_cast<Path *>(lfirst(lc));
    PathTarget *projection = nullptr;
    if (IsA(path, ProjectionPath)) {
      projection = path->pathtarget;
      path = castNode(ProjectionPath, path)->subpath;
    }
    if (!IsA(path, ForeignPath) || path->param_info != nullptr ||
        !pathkeys_contained_in(root->sort_pathkeys, path->pathkeys))
      continue;
    ForeignPath *fp = castNode(ForeignPath, path);
    if (fp->fdw_private != NIL || fp->fdw_outerpath != nullptr) continue;
    ForeignPath *limited = makeNode(ForeignPath);
    memcpy(limited, fp, sizeof(ForeignPath));
    // postgres_fdw's private list of an upper-rel path: (has_final_sort, has_limit). With
    // has_limit its deparser appends this query's LIMIT to the ordered remote query.
    limited->fdw_private = list_make2(makeBoolean(false), makeBoolean(true));
    const double rows = std::max(fp->path.rows, 1.0);
    limited->path.rows = std::min(rows, k);
    limited->path.total_cost =
        fp->path.startup_cost + (fp->path.total_cost - fp->path.startup_cost) * k / rows;
    Path *out = &limited->path;
    if (one_statement) out = remote_topk_path(root, child, limited, group);
    if (projection != nullptr) out = &create_projection_path(root, child, out, projection)->path;
    return out;
  }
  return nullptr;
}

double cost_of_first(const Path *p, double k) {
  const double rows = std::max(p->rows, 1.0);
  return k >= rows ? p->total_cost : p->startup_cost + (p->total_cost - p->startup_cost) * k / rows;
}

// A path that delivers at most k rows of one partition, its k best.
Path *partition_topk_path(PlannerInfo *root, RelOptInfo *child, double k, int group) {
  if (is_postgres_fdw(child)) {
    Path *p = foreign_topk_path(root, child, k, group);
    if (p != nullptr) return p;
  }
  // The cheapest way to the first k rows in order: an ordered path (the exact top-k scan, an
  // index scan, an ordered foreign scan) or the cheapest path under a bounded sort.
  Path *cheapest = nullptr;
  Path *best = nullptr;
  ListCell *lc;
  foreach (lc, child->pathlist) {
    Path *p = static_cast<Path *>(lfirst(lc));
    if (p->param_info != nullptr) continue;
    if (cheapest == nullptr || p->total_cost < cheapest->total_cost) cheapest = p;
    if (pathkeys_contained_in(root->sort_pathkeys, p->pathkeys) &&
        (best == nullptr || cost_of_first(p, k) < cost_of_first(best, k)))
      best = p;
  }
  if (cheapest == nullptr) return nullptr;
  Path *sorted = &create_sort_path(root, child, cheapest, root->sort_pathkeys, k)->path;
  if (best == nullptr || cost_of_first(sorted, k) < cost_of_first(best, k)) best = sorted;
  Node *count = reinterpret_cast<Node *>(makeConst(INT8OID, -1, InvalidOid, sizeof(int64),
                                                   Int64GetDatum(static_cast<int64>(k)), false,
                                                   FLOAT8PASSBYVAL));
  return &create_limit_path(root, child, best, nullptr, count, LIMIT_OPTION_COUNT, 0,
                            static_cast<int64>(k))
              ->path;
}

// Leaf partitions (sub-partitions flattened into one Append, as PostgreSQL does).
bool collect_partitions(PlannerInfo *root, RelOptInfo *rel, double k, int group, List **paths) {
  for (int i = 0; i < rel->nparts; ++i) {
    RelOptInfo *child = rel->part_rels[i];
    if (child == nullptr || IS_DUMMY_REL(child)) continue;
    if (IS_PARTITIONED_REL(child)) {
      if (!collect_partitions(root, child, k, group, paths)) return false;
      continue;
    }
    Path *p = partition_topk_path(root, child, k, group);
    if (p == nullptr) return false;
    *paths = lappend(*paths, p);
  }
  return true;
}

void upper_paths(PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel,
                 RelOptInfo *output_rel, void *extra) {
  if (prev_upper_paths) prev_upper_paths(root, stage, input_rel, output_rel, extra);
  if (!enabled || stage != UPPERREL_ORDERED) return;
  if (input_rel->reloptkind != RELOPT_BASEREL || !IS_PARTITIONED_REL(input_rel) ||
      !bms_equal(input_rel->relids, root->all_baserels) || output_rel->pathlist == NIL)
    return;
  Query *parse = root->parse;
  // root->limit_tuples is -1 unless a constant LIMIT (plus OFFSET) bounds the rows the ordered
  // scan must deliver, with no grouping, DISTINCT, window function or set-returning function.
  if (parse->commandType != CMD_SELECT || parse->rowMarks != NIL ||
      parse->limitOption != LIMIT_OPTION_COUNT || parse->setOperations != nullptr ||
      !(root->limit_tuples >= 1.0) || root->limit_tuples > 1e6 ||
      list_length(root->sort_pathkeys) != 1 || !exact_scan::order_is_distance(root, input_rel))
    return;
  const double k = root->limit_tuples;
  List *paths = NIL;
  static int groups = 0;  // ties the one-statement scans of this top-k together
  if (!collect_partitions(root, input_rel, k, ++groups, &paths) || paths == NIL) return;
  PathTarget *target = static_cast<Path *>(linitial(output_rel->pathlist))->pathtarget;
  AppendPath *append = create_append_path(root, input_rel, paths, NIL, NIL, nullptr, 0, false, -1);
  Path *path = &create_sort_path(root, output_rel, &append->path, root->sort_pathkeys, k)->path;
  if (path->pathtarget != target) path = apply_projection_to_path(root, output_rel, path, target);
  output_rel->pathlist = NIL;
  output_rel->partial_pathlist = NIL;
  add_path(output_rel, path);
}

// ---- 4. parameters of foreign scans: computed before the scans start -----------------------

// postgres_fdw computes the values of a remote query's parameters when it opens the remote
// cursor, with search_path = pg_catalog (its transmission settings): an initplan parameter (the
// query vector above) that has not been computed yet would run its sub-select there, where a
// function that names a table without its schema fails. So at executor start the initplans that
// foreign scans use are run first, once, under the session's settings (they would be run at the
// scans' start anyway). Initplans that depend on other parameters are left alone.
ExecutorStart_hook_type prev_executor_start = nullptr;

bool collect_exec_params(Node *n, Bitmapset **ids) {
  if (n == nullptr) return false;
  if (IsA(n, Param) && castNode(Param, n)->paramkind == PARAM_EXEC)
    *ids = bms_add_member(*ids, castNode(Param, n)->paramid);
  return expression_tree_walker(
      n, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(collect_exec_params)), ids);
}

bool foreign_scan_params(PlanState *ps, Bitmapset **ids) {
  if (ps == nullptr) return false;
  if (IsA(ps, ForeignScanState))
    collect_exec_params(reinterpret_cast<Node *>(castNode(ForeignScan, ps->plan)->fdw_exprs), ids);
  return planstate_tree_walker(
      ps, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(foreign_scan_params)), ids);
}

void executor_start(QueryDesc *qd, int eflags) {
  if (prev_executor_start)
    prev_executor_start(qd, eflags);
  else
    standard_ExecutorStart(qd, eflags);
  if (!enabled || (eflags & EXEC_FLAG_EXPLAIN_ONLY) || qd->planstate == nullptr) return;
  Bitmapset *ids = nullptr;
  foreign_scan_params(qd->planstate, &ids);
  EState *estate = qd->estate;
  int id = -1;
  while ((id = bms_next_member(ids, id)) >= 0) {
    ParamExecData *prm = &estate->es_param_exec_vals[id];
    if (prm->execPlan == nullptr) continue;
    // Only an initplan that depends on no other parameter (of an outer query level, of another
    // initplan) can be computed before anything else has run.
    SubPlanState *init = static_cast<SubPlanState *>(prm->execPlan);
    if (!bms_is_empty(init->planstate->plan->extParam)) continue;
    ExecSetParamPlan(init, GetPerTupleExprContext(estate));
  }
}

}  // namespace

void init() {
  DefineCustomBoolVariable(
      "lookalike.partition_topk",
      "Plans ORDER BY <embedding column> <op> <query> LIMIT k on a partitioned table as a top-k "
      "per partition.",
      "Each partition (local, or a postgres_fdw foreign table: ORDER BY ... LIMIT k in its remote "
      "query, run concurrently) delivers its own k best, which are merged; the query vector is "
      "computed once, on the coordinator, and lookalike.ef_search and lookalike.max_scan_tuples "
      "are shipped to the shards with the query. See docs/scale-out.md.",
      &enabled, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  prev_planner = planner_hook;
  planner_hook = planner;
  prev_upper_paths = create_upper_paths_hook;
  create_upper_paths_hook = upper_paths;
  prev_executor_start = ExecutorStart_hook;
  ExecutorStart_hook = executor_start;
  remote_topk_init();
}

}  // namespace lookalike::scaleout

// with_search_settings(q, ef_search, max_scan_tuples): returns q. Shipped to a shard inside the
// ORDER BY of a remote top-k query (see above): there the planner folds the call (constant
// arguments), which sets lookalike.ef_search and lookalike.max_scan_tuples for the rest of the
// remote transaction (as SET LOCAL) before the index scan starts. Where a setting already has the
// value (the coordinator itself) nothing is set. The only effect is on search settings, which
// change no stored data, and it is the same for the same arguments: declared IMMUTABLE so that
// postgres_fdw ships it.
LOOKALIKE_FUNCTION(with_search_settings) {
  Datum q = PG_GETARG_DATUM(0);
  const int ef = PG_GETARG_INT32(1);
  const int max_tuples = PG_GETARG_INT32(2);
  if (!IsInParallelMode()) {
    if (ef != lookalike::hnswpg::ef_search)
      set_config_option("lookalike.ef_search", psprintf("%d", ef), PGC_USERSET, PGC_S_SESSION,
                        GUC_ACTION_LOCAL, true, 0, false);
    if (max_tuples != lookalike::hnswpg::max_scan_tuples)
      set_config_option("lookalike.max_scan_tuples", psprintf("%d", max_tuples), PGC_USERSET,
                        PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
  }
  PG_RETURN_DATUM(q);
}
