// Scale-out: a foreign partition's top-k as ONE remote statement, all shards at once.
//
// postgres_fdw reads a foreign table through a cursor: per shard and query it sends
// START TRANSACTION (when the coordinator's transaction first uses the shard), DECLARE, FETCH,
// CLOSE and, at the end, COMMIT; START, DECLARE and CLOSE wait for their answer one shard after
// the other, so a 2-shard query costs eight sequential round trips (docs/scale-out.md,
// "Performance", has the measurement). For a top-k the cursor brings nothing: the shard's answer
// is at most k rows. This scan replaces postgres_fdw's ForeignScan of such a partition by
//   Custom Scan (lookalike remote top-k): Remote SQL: SELECT ... ORDER BY ... LIMIT k
// which sends postgres_fdw's own remote query (deparsed by postgres_fdw at plan time, with
// LIMIT k where k = LIMIT + OFFSET) as one statement with its parameters, and
//  - uses postgres_fdw's connection and remote transaction (GetConnection: same user mapping,
//    same security checks, same REPEATABLE READ remote transaction and snapshot as postgres_fdw,
//    so the same rows are seen, including rows this transaction wrote through postgres_fdw; the
//    remote transaction is committed or rolled back by postgres_fdw with the coordinator's);
//  - sends the statements of every partition of one top-k (a plan-time group) when the first of
//    them is executed, so the shards work concurrently (one connection carries one statement at a
//    time: partitions on the same server are sent one after the other);
//  - prepares a statement text that recurs on a connection once, as a named statement on the
//    shard (lookalike.shard_prepare), and from then on only executes it (section "prepared
//    statements on the shards" below);
//  - waits with postgres_fdw's pgfdw_get_result (WaitLatchOrSocket, CHECK_FOR_INTERRUPTS); on
//    cancel or error postgres_fdw's transaction callback cancels a statement still running on a
//    shard and rolls the remote transaction back, as for its own asynchronous scans.
// postgres_fdw's functions are reached with load_external_function (PostgreSQL 15's signatures,
// declared below: postgres_fdw.h is not installed).
//
// C-style code over palloc'd memory: these frames own no C++ objects, so PostgreSQL errors may
// longjmp through them. The PGresults (malloc'd by libpq) are freed on every path: by the scan
// when it is done with them, and by a callback of the executor's memory context on error.
#include "scaleout/remote_topk_pg.hpp"

#include <algorithm>

extern "C" {
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "libpq-events.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 160000
#error "remote_topk_pg.cpp calls postgres_fdw's PostgreSQL 15 functions"
#endif

extern "C" Datum embedding_recv(PG_FUNCTION_ARGS);  // src/vector/embedding_pg.cpp

namespace lookalike::scaleout {

bool fanout = true;
bool prepare = true;

namespace {

constexpr const char *kName = "lookalike remote top-k";

// postgres_fdw (PostgreSQL 15, contrib/postgres_fdw/postgres_fdw.h).
struct PgFdwConnState {
  AsyncRequest *pendingAreq;
};
struct Fdw {
  PGconn *(*get_connection)(UserMapping *, bool, PgFdwConnState **);
  void (*release_connection)(PGconn *);
  PGresult *(*get_result)(PGconn *, const char *);
  void (*report_error)(int, PGresult *, PGconn *, bool, const char *);
  void (*process_pending_request)(AsyncRequest *);
  int (*set_transmission_modes)();
  void (*reset_transmission_modes)(int);
};

const Fdw &fdw() {
  static Fdw f;
  static bool loaded = false;
  if (!loaded) {
    // signalError: a postgres_fdw without one of these functions is an ERROR (58P01 for a missing
    // library, 42883 for a missing function), never a call through a null pointer.
    const auto load = [](const char *name) {
      return load_external_function("$libdir/postgres_fdw", name, true, nullptr);
    };
    f.get_connection = reinterpret_cast<decltype(f.get_connection)>(load("GetConnection"));
    f.release_connection =
        reinterpret_cast<decltype(f.release_connection)>(load("ReleaseConnection"));
    f.get_result = reinterpret_cast<decltype(f.get_result)>(load("pgfdw_get_result"));
    f.report_error = reinterpret_cast<decltype(f.report_error)>(load("pgfdw_report_error"));
    f.process_pending_request =
        reinterpret_cast<decltype(f.process_pending_request)>(load("process_pending_request"));
    f.set_transmission_modes =
        reinterpret_cast<decltype(f.set_transmission_modes)>(load("set_transmission_modes"));
    f.reset_transmission_modes =
        reinterpret_cast<decltype(f.reset_transmission_modes)>(load("reset_transmission_modes"));
    loaded = true;
  }
  return f;
}

// ---- planner --------------------------------------------------------------------------------

Node *create_state(CustomScan *);
const CustomScanMethods scan_methods = {kName, create_state};

// postgres_fdw plans its foreign scan of the partition (its remote query, parameters and
// retrieved columns) with this query's LIMIT replaced by LIMIT k, k = LIMIT + OFFSET: the rows
// a partition must deliver; the OFFSET is applied once, on the coordinator, after the merge.
ForeignScan *fdw_plan(PlannerInfo *root, RelOptInfo *rel, ForeignPath *fp, List *tlist,
                      List *clauses) {
  Query *parse = root->parse;
  Node *count = parse->limitCount;
  Node *offset = parse->limitOffset;
  parse->limitCount = reinterpret_cast<Node *>(
      makeConst(INT8OID, -1, InvalidOid, sizeof(int64),
                Int64GetDatum(static_cast<int64>(root->limit_tuples)), false, FLOAT8PASSBYVAL));
  parse->limitOffset = nullptr;
  Plan *plan = nullptr;
  PG_TRY();
  {
    plan = &rel->fdwroutine
                ->GetForeignPlan(root, rel, planner_rt_fetch(rel->relid, root)->relid, fp, tlist,
                                 clauses, nullptr)
                ->scan.plan;
  }
  PG_FINALLY();
  {
    parse->limitCount = count;
    parse->limitOffset = offset;
  }
  PG_END_TRY();
  return castNode(ForeignScan, plan);
}

Plan *plan_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path, List *tlist,
                List *clauses, List *) {
  ForeignPath *fp = static_cast<ForeignPath *>(linitial(best_path->custom_private));
  ForeignScan *fs = fdw_plan(root, rel, fp, tlist, clauses);
  CustomScan *cs = makeNode(CustomScan);
  cs->scan.plan.targetlist = fs->scan.plan.targetlist;
  cs->scan.plan.qual = fs->scan.plan.qual;  // none: every clause runs on the shard
  cs->scan.scanrelid = rel->relid;
  cs->flags = best_path->flags;
  // postgres_fdw's remote query parameters, evaluated by this node.
  cs->custom_exprs = fs->fdw_exprs;
  // (remote SQL, retrieved attribute numbers, group)
  cs->custom_private = list_make3(linitial(fs->fdw_private), lsecond(fs->fdw_private),
                                  lsecond(best_path->custom_private));
  cs->custom_scan_tlist = NIL;
  cs->methods = &scan_methods;
  return &cs->scan.plan;
}

const CustomPathMethods path_methods = {kName, plan_path, nullptr};

// ---- executor -------------------------------------------------------------------------------

struct Group;

// kPreparing: the statement's Parse sent, its execution not yet.
enum Phase { kIdle, kPreparing, kSent, kDone };

struct RemoteTopk {
  CustomScanState css;  // first: the executor's view
  const char *sql;
  List *retrieved;  // attribute numbers of the result's columns
  int group;
  List *params;  // ExprStates
  FmgrInfo *param_out;
  FmgrInfo *in;  // per attribute of the foreign table: its text input function
  Oid *ioparam;
  FmgrInfo *recv;  // its binary input function (looked up at the first binary result)
  Oid *recv_ioparam;
  PGconn *conn;
  PgFdwConnState *conn_state;
  Phase phase;
  PGresult *res;
  int next_row;
  char prepared[32];  // the name of the statement last sent, "" when sent unnamed
  char parsing[32];   // the name of the statement being prepared (kPreparing)
  uint64 parsing_hash;
  uint64 types;  // hash of the types of the retrieved columns (binary results: see Format)
  Oid serverid;  // the foreign server, named in messages
};

// The remote top-k scans of one executor run (EState), found by the first of a group to run.
struct Group {
  EState *estate;
  List *scans;  // RemoteTopk *
  Group *next;
  MemoryContextCallback free_results;
};
Group *groups = nullptr;

void free_results(void *arg) {
  Group *g = static_cast<Group *>(arg);
  ListCell *lc;
  foreach (lc, g->scans) {
    RemoteTopk *st = static_cast<RemoteTopk *>(lfirst(lc));
    PQclear(st->res);
    st->res = nullptr;
  }
  for (Group **p = &groups; *p != nullptr; p = &(*p)->next)
    if (*p == g) {
      *p = g->next;
      break;
    }
}

void join_group(RemoteTopk *st, EState *estate) {
  Group *g = groups;
  while (g != nullptr && g->estate != estate) g = g->next;
  if (g == nullptr) {
    g = static_cast<Group *>(MemoryContextAllocZero(estate->es_query_cxt, sizeof(Group)));
    g->estate = estate;
    g->free_results.func = free_results;
    g->free_results.arg = g;
    MemoryContextRegisterResetCallback(estate->es_query_cxt, &g->free_results);
    g->next = groups;
    groups = g;
  }
  MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
  g->scans = lappend(g->scans, st);
  MemoryContextSwitchTo(old);
}

Group *group_of(RemoteTopk *st) {
  for (Group *g = groups; g != nullptr; g = g->next)
    if (g->estate == st->css.ss.ps.state) return g;
  elog(ERROR, "lookalike: remote top-k scan without its executor group");
  return nullptr;
}

// ---- prepared statements on the shards ------------------------------------------------------
//
// A top-k statement is prepared once per connection and remote SQL text (a named statement:
// parsed, analysed and, after the shard's first five custom plans, planned once) and then only
// bound and executed, its parameters (the query vector and the search settings) sent with each
// execution as before. What a connection has prepared is kept with the connection itself, as
// libpq instance data of an event procedure: a connection that postgres_fdw opens anew (after a
// shard restart, a broken connection, postgres_fdw_disconnect(), changed server options) is a new
// PGconn with nothing prepared, and a closed one frees its list (PGEVT_CONNDESTROY). A statement
// is recorded only once the shard has confirmed its Parse; every attempt takes a new name, so a
// Parse whose answer was never read (an error or cancel while waiting) cannot collide with a later
// one. Names: lookalike_topk_<n>, n counting per connection (postgres_fdw's own prepared
// statements are pgsql_fdw_prep_<n>).
constexpr int kMaxPrepared = 64;  // per connection; further statement texts run unnamed

constexpr int kSeen = 64;  // texts run once, remembered (by hash) to be prepared when they recur

// The format of a prepared statement's result: its first execution is read as text, which tells
// the shard's column types; binary from then on when every column can be read in binary as the
// coordinator's column type (binary_ok()). The decision holds for the coordinator's column types
// it was made with (`types`): the same remote text may be run for two foreign tables whose column
// types differ (or the foreign table's types may change), and a scan with other types reads text
// and decides again.
enum Format : int8 { kFormatUnknown = -1, kFormatText = 0, kFormatBinary = 1 };

struct Prepared {
  char *sql;  // malloc'd; nullptr: a statement to DEALLOCATE before the next Parse
  uint64 hash;
  Format format;
  uint64 types;  // hash of the coordinator's column types the format was decided for
  char name[32];
  Prepared *next;
};
struct ConnPrepared {
  Prepared *list;
  int count;
  unsigned next_id;
  uint64 seen[kSeen];  // hashes of statement texts run unnamed once on this connection
  int seen_next;
};

void forget_all(ConnPrepared *cp) {
  while (cp->list != nullptr) {
    Prepared *p = cp->list;
    cp->list = p->next;
    free(p->sql);
    free(p);
  }
  cp->count = 0;
  memset(cp->seen, 0, sizeof(cp->seen));
}

int conn_events(PGEventId id, void *info, void *);

ConnPrepared *prepared_of(PGconn *conn) {
  return static_cast<ConnPrepared *>(PQinstanceData(conn, conn_events));
}

// libpq calls this from PQreset/PQfinish (no PostgreSQL error may be raised here).
int conn_events(PGEventId id, void *info, void *) {
  PGconn *conn = nullptr;
  if (id == PGEVT_CONNRESET) conn = static_cast<PGEventConnReset *>(info)->conn;
  if (id == PGEVT_CONNDESTROY) conn = static_cast<PGEventConnDestroy *>(info)->conn;
  if (conn == nullptr) return 1;  // register, result events: nothing to do
  ConnPrepared *cp = prepared_of(conn);
  if (cp == nullptr) return 1;
  forget_all(cp);  // a reset connection is a new session: nothing prepared there any more
  if (id == PGEVT_CONNDESTROY) {
    PQsetInstanceData(conn, conn_events, nullptr);
    free(cp);
  }
  return 1;
}

// This connection's list, attached on first use.
ConnPrepared *attach(PGconn *conn) {
  ConnPrepared *cp = prepared_of(conn);
  if (cp != nullptr) return cp;
  cp = static_cast<ConnPrepared *>(calloc(1, sizeof(ConnPrepared)));
  if (cp == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  if (!PQregisterEventProc(conn, conn_events, kName, nullptr) ||
      !PQsetInstanceData(conn, conn_events, cp)) {
    free(cp);
    return nullptr;  // (not expected) the statement then runs unnamed
  }
  return cp;
}

// Sends `sql` (no parameters) and waits for its answer; an error answer is an ERROR.
void run_command(PGconn *conn, const char *sql) {
  if (!PQsendQuery(conn, sql)) fdw().report_error(ERROR, nullptr, conn, false, sql);
  PGresult *res = fdw().get_result(conn, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) fdw().report_error(ERROR, res, conn, true, sql);
  PQclear(res);
}

// The name of this scan's statement prepared on its connection, or nullptr: run it unnamed. When
// the statement is to be prepared now, its Parse is sent (*parsing): end_prepare() waits for the
// answer, so that the Parses of a query's shards run at the same time.
const char *prepared_name(RemoteTopk *st, int nparams, bool *parsing) {
  *parsing = false;
  if (!prepare) return nullptr;
  ConnPrepared *cp = attach(st->conn);
  if (cp == nullptr) return nullptr;
  const uint64 hash = hash_bytes_extended(reinterpret_cast<const unsigned char *>(st->sql),
                                          static_cast<int>(strlen(st->sql)), 0) |
                      1;  // never 0, the empty slot of `seen`
  for (Prepared *p = cp->list; p != nullptr; p = p->next)
    if (p->hash == hash && p->sql != nullptr && strcmp(p->sql, st->sql) == 0) return p->name;
  // A text is prepared when it recurs: one that is run once (e.g. a WHERE clause with a constant
  // that changes from query to query) costs no Parse round trip and no memory on the shard.
  bool seen = false;
  for (int i = 0; i < kSeen && !seen; ++i) seen = cp->seen[i] == hash;
  if (!seen) {
    cp->seen[cp->seen_next] = hash;
    cp->seen_next = (cp->seen_next + 1) % kSeen;
    return nullptr;
  }
  // Statements forgotten since the last Parse: deallocated on the shard first, and dropped.
  for (Prepared **pp = &cp->list; *pp != nullptr;) {
    Prepared *p = *pp;
    if (p->sql != nullptr) {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    cp->count--;
    char command[64];
    snprintf(command, sizeof(command), "DEALLOCATE %s", p->name);
    free(p);
    run_command(st->conn, command);
  }
  if (cp->count >= kMaxPrepared) return nullptr;
  snprintf(st->parsing, sizeof(st->parsing), "lookalike_topk_%u", ++cp->next_id);
  st->parsing_hash = hash;
  // The parameters' types are those the remote SQL casts them to ($1::public.embedding ...).
  if (!PQsendPrepare(st->conn, st->parsing, st->sql, nparams, nullptr))
    fdw().report_error(ERROR, nullptr, st->conn, false, st->sql);
  *parsing = true;
  return st->parsing;
}

// Waits for the answer to the Parse that prepared_name() sent, and records the statement.
void end_prepare(RemoteTopk *st) {
  PGresult *res = fdw().get_result(st->conn, st->sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    fdw().report_error(ERROR, res, st->conn, true, st->sql);
  PQclear(res);
  ConnPrepared *cp = prepared_of(st->conn);
  if (cp == nullptr) return;
  // Recorded once the shard has it.
  Prepared *p = static_cast<Prepared *>(calloc(1, sizeof(Prepared)));
  char *sql = strdup(st->sql);
  if (p == nullptr || sql == nullptr) {
    free(p);
    free(sql);
    ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
  }
  p->sql = sql;
  p->hash = st->parsing_hash;
  p->format = kFormatUnknown;
  strlcpy(p->name, st->parsing, sizeof(p->name));
  p->next = cp->list;
  cp->list = p;
  cp->count++;
}

Prepared *find_prepared(PGconn *conn, const char *name) {
  ConnPrepared *cp = prepared_of(conn);
  if (cp == nullptr || name[0] == '\0') return nullptr;
  for (Prepared *p = cp->list; p != nullptr; p = p->next)
    if (p->sql != nullptr && strcmp(p->name, name) == 0) return p;
  return nullptr;
}

// The shard's statement `name` cannot be used any more: forget it, and DEALLOCATE it on the shard
// before the next Parse on this connection.
void forget(PGconn *conn, const char *name) {
  Prepared *p = find_prepared(conn, name);
  if (p == nullptr) return;
  free(p->sql);
  p->sql = nullptr;
}

// Can every column of this (text) result be read in binary as the coordinator's column type? A
// built-in base type with a binary input function, which the shard's column has too (built-in
// types have the same OID everywhere: a shard column of another type, e.g. bigint for the
// coordinator's integer, stays text, which converts it); or lookalike's embedding (its binary
// form, int16 dim, int16 0, float4 values, is checked by embedding_recv), which is not a built-in
// type on the shard either.
bool binary_ok(RemoteTopk *st, PGresult *res) {
  TupleDesc desc = RelationGetDescr(st->css.ss.ss_currentRelation);
  if (PQnfields(res) != list_length(st->retrieved)) return false;
  ListCell *lc;
  int col = 0;
  foreach (lc, st->retrieved) {
    const Oid type = TupleDescAttr(desc, lfirst_int(lc) - 1)->atttypid;
    const Oid remote = PQftype(res, col++);
    HeapTuple tp = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
    if (!HeapTupleIsValid(tp)) return false;
    const Form_pg_type t = reinterpret_cast<Form_pg_type>(GETSTRUCT(tp));
    const bool base = t->typtype == TYPTYPE_BASE && OidIsValid(t->typreceive);
    const Oid receive = t->typreceive;
    ReleaseSysCache(tp);
    if (!base) return false;
    if (type < FirstGenbkiObjectId) {
      if (remote != type) return false;
    } else {
      FmgrInfo f;
      fmgr_info(receive, &f);
      if (f.fn_addr != embedding_recv || remote < FirstGenbkiObjectId) return false;
    }
  }
  return true;
}

void sent_prepared(RemoteTopk *st);

// The statement's answer, kept until the scan has returned its rows.
void collect(RemoteTopk *st) {
  if (st->phase == kPreparing) sent_prepared(st);
  PGresult *res = fdw().get_result(st->conn, st->sql);
  st->phase = kDone;
  st->next_row = 0;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    if (st->prepared[0] != '\0') {
      // The shard no longer has the statement (DEALLOCATE ALL, DISCARD ALL, e.g. by a pooler
      // between the coordinator and the shard): nothing there is prepared any more; or its plan
      // cannot be reused ("cached plan must not change result type": the shard's table changed).
      // Forget it: the next query prepares again, under a new name (the old one deallocated
      // first if it still exists).
      const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      if (state != nullptr && strcmp(state, "26000") == 0) {
        ConnPrepared *cp = prepared_of(st->conn);
        if (cp != nullptr) forget_all(cp);
        PQclear(res);
        const char *server = GetForeignServer(st->serverid)->servername;
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_SQL_STATEMENT_NAME),
                 errmsg("the remote top-k statement prepared on server \"%s\" no longer exists "
                        "there",
                        server),
                 errdetail("Remote SQL: %s", st->sql),
                 errhint("The next query prepares it again. Behind a connection pooler that does "
                         "not keep the shard's session, set lookalike.shard_prepare = off.")));
      } else if (state != nullptr && strcmp(state, "0A000") == 0) {
        forget(st->conn, st->prepared);
      }
    }
    fdw().report_error(ERROR, res, st->conn, true, st->sql);
  }
  st->res = res;
  if (!PQbinaryTuples(res)) {
    Prepared *p = find_prepared(st->conn, st->prepared);
    if (p != nullptr && (p->format == kFormatUnknown || p->types != st->types)) {
      p->format = binary_ok(st, res) ? kFormatBinary : kFormatText;
      p->types = st->types;
    }
  }
}

// Another scan of this executor run whose statement is still running on the same connection.
RemoteTopk *busy_with(RemoteTopk *st) {
  ListCell *lc;
  foreach (lc, group_of(st)->scans) {
    RemoteTopk *other = static_cast<RemoteTopk *>(lfirst(lc));
    if (other != st && other->conn == st->conn &&
        (other->phase == kSent || other->phase == kPreparing))
      return other;
  }
  return nullptr;
}

// Sends the statement's execution: its parameters' values under the session's settings, their
// text under postgres_fdw's.
void execute(RemoteTopk *st, const char *name) {
  ExprContext *econtext = st->css.ss.ps.ps_ExprContext;
  MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
  const int n = list_length(st->params);
  const char **values = static_cast<const char **>(palloc0(sizeof(char *) * std::max(n, 1)));
  Datum *datums = static_cast<Datum *>(palloc0(sizeof(Datum) * std::max(n, 1)));
  bool *nulls = static_cast<bool *>(palloc0(sizeof(bool) * std::max(n, 1)));
  ListCell *lc;
  int i = 0;
  foreach (lc, st->params)
    datums[i] = ExecEvalExpr(static_cast<ExprState *>(lfirst(lc)), econtext, &nulls[i]), ++i;
  const int nest = fdw().set_transmission_modes();
  for (i = 0; i < n; ++i)
    if (!nulls[i]) values[i] = OutputFunctionCall(&st->param_out[i], datums[i]);
  fdw().reset_transmission_modes(nest);
  st->prepared[0] = '\0';
  if (name != nullptr) {
    strlcpy(st->prepared, name, sizeof(st->prepared));
    Prepared *p = find_prepared(st->conn, name);
    const int format = p != nullptr && p->format == kFormatBinary && p->types == st->types ? 1 : 0;
    if (!PQsendQueryPrepared(st->conn, name, n, values, nullptr, nullptr, format))
      fdw().report_error(ERROR, nullptr, st->conn, false, st->sql);
  } else if (!PQsendQueryParams(st->conn, st->sql, n, nullptr, values, nullptr, nullptr, 0)) {
    fdw().report_error(ERROR, nullptr, st->conn, false, st->sql);
  }
  MemoryContextSwitchTo(old);
  st->phase = kSent;
}

// Sends the statement, or only its Parse when it is prepared now (kPreparing: executed by
// sent_prepared() once the shard has answered the Parse).
void send(RemoteTopk *st) {
  if (st->conn_state->pendingAreq != nullptr)
    fdw().process_pending_request(st->conn_state->pendingAreq);
  bool parsing;
  const char *name = prepared_name(st, list_length(st->params), &parsing);
  if (parsing)
    st->phase = kPreparing;
  else
    execute(st, name);
}

void sent_prepared(RemoteTopk *st) {
  end_prepare(st);
  execute(st, st->parsing);
}

// The first scan of a group to run sends the statements of the whole group, then waits for its
// own answer; the others' answers arrive meanwhile.
void start_group(RemoteTopk *st) {
  ListCell *lc;
  foreach (lc, group_of(st)->scans) {
    RemoteTopk *other = static_cast<RemoteTopk *>(lfirst(lc));
    if (other == st || other->group != st->group) continue;
    // Its parameters changed since it last ran (a correlated sub-query): rescan it now, as its
    // next ExecProcNode would.
    if (other->css.ss.ps.chgParam != nullptr) ExecReScan(&other->css.ss.ps);
    if (other->phase == kIdle && busy_with(other) == nullptr) send(other);
  }
  if (st->phase == kIdle) {
    RemoteTopk *busy = busy_with(st);
    if (busy != nullptr) collect(busy);
    send(st);
  }
  // The Parses sent above have been running on their shards at the same time: each statement is
  // executed as soon as its shard has answered its Parse.
  foreach (lc, group_of(st)->scans) {
    RemoteTopk *other = static_cast<RemoteTopk *>(lfirst(lc));
    if (other->group == st->group && other->phase == kPreparing) sent_prepared(other);
  }
}

TupleTableSlot *next_row(ScanState *ss) {
  RemoteTopk *st = reinterpret_cast<RemoteTopk *>(ss);
  if (st->phase == kIdle) start_group(st);
  if (st->phase == kSent || st->phase == kPreparing) collect(st);
  TupleTableSlot *slot = ss->ss_ScanTupleSlot;
  ExecClearTuple(slot);
  if (st->res == nullptr || st->next_row >= PQntuples(st->res)) return slot;
  const int row = st->next_row++;
  const int natts = slot->tts_tupleDescriptor->natts;
  for (int a = 0; a < natts; ++a) slot->tts_isnull[a] = true;
  const bool binary = PQbinaryTuples(st->res);
  TupleDesc desc = slot->tts_tupleDescriptor;
  ListCell *lc;
  if (binary && st->recv == nullptr) {
    FmgrInfo *recv = static_cast<FmgrInfo *>(
        MemoryContextAllocZero(ss->ps.state->es_query_cxt, sizeof(FmgrInfo) * std::max(natts, 1)));
    Oid *ioparam = static_cast<Oid *>(
        MemoryContextAllocZero(ss->ps.state->es_query_cxt, sizeof(Oid) * std::max(natts, 1)));
    foreach (lc, st->retrieved) {
      const int a = lfirst_int(lc) - 1;
      Oid f;
      getTypeBinaryInputInfo(TupleDescAttr(desc, a)->atttypid, &f, &ioparam[a]);
      fmgr_info_cxt(f, &recv[a], ss->ps.state->es_query_cxt);
    }
    st->recv = recv;
    st->recv_ioparam = ioparam;
  }
  MemoryContext old = MemoryContextSwitchTo(ss->ps.ps_ExprContext->ecxt_per_tuple_memory);
  int col = 0;
  foreach (lc, st->retrieved) {
    const int a = lfirst_int(lc) - 1;
    if (!PQgetisnull(st->res, row, col)) {
      const int32 typmod = TupleDescAttr(desc, a)->atttypmod;
      if (binary) {
        // ReceiveFunctionCall reads the value in place (libpq's copy ends with a NUL byte) and
        // checks that all of it was consumed.
        StringInfoData buf;
        buf.data = PQgetvalue(st->res, row, col);
        buf.len = PQgetlength(st->res, row, col);
        buf.maxlen = buf.len + 1;
        buf.cursor = 0;
        slot->tts_values[a] = ReceiveFunctionCall(&st->recv[a], &buf, st->recv_ioparam[a], typmod);
      } else {
        slot->tts_values[a] =
            InputFunctionCall(&st->in[a], PQgetvalue(st->res, row, col), st->ioparam[a], typmod);
      }
      slot->tts_isnull[a] = false;
    }
    ++col;
  }
  MemoryContextSwitchTo(old);
  return ExecStoreVirtualTuple(slot);
}

bool recheck(ScanState *, TupleTableSlot *) { return true; }

TupleTableSlot *exec_scan(CustomScanState *node) { return ExecScan(&node->ss, next_row, recheck); }

void begin_scan(CustomScanState *node, EState *estate, int eflags) {
  RemoteTopk *st = reinterpret_cast<RemoteTopk *>(node);
  CustomScan *cs = reinterpret_cast<CustomScan *>(node->ss.ps.plan);
  st->sql = strVal(linitial(cs->custom_private));
  st->retrieved = static_cast<List *>(lsecond(cs->custom_private));
  st->group = intVal(lthird(cs->custom_private));
  if (eflags & EXEC_FLAG_EXPLAIN_ONLY) return;
  // The user postgres_fdw would connect as (its postgresBeginForeignScan).
  RangeTblEntry *rte = exec_rt_fetch(cs->scan.scanrelid, estate);
  const Oid userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
  const Oid serverid = GetForeignTable(rte->relid)->serverid;
  UserMapping *user = GetUserMapping(userid, serverid);
  st->serverid = serverid;
  st->conn = fdw().get_connection(user, false, &st->conn_state);
  st->params = ExecInitExprList(cs->custom_exprs, &node->ss.ps);
  st->param_out =
      static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * std::max(list_length(st->params), 1)));
  int i = 0;
  ListCell *lc;
  foreach (lc, cs->custom_exprs) {
    Oid out;
    bool varlena;
    getTypeOutputInfo(exprType(static_cast<Node *>(lfirst(lc))), &out, &varlena);
    fmgr_info(out, &st->param_out[i++]);
  }
  TupleDesc desc = RelationGetDescr(node->ss.ss_currentRelation);
  st->in = static_cast<FmgrInfo *>(palloc0(sizeof(FmgrInfo) * std::max(desc->natts, 1)));
  st->ioparam = static_cast<Oid *>(palloc0(sizeof(Oid) * std::max(desc->natts, 1)));
  foreach (lc, st->retrieved) {
    const int a = lfirst_int(lc) - 1;
    if (a < 0 || a >= desc->natts) elog(ERROR, "lookalike: remote top-k of a system column");
    Oid in;
    const Oid type = TupleDescAttr(desc, a)->atttypid;
    getTypeInputInfo(type, &in, &st->ioparam[a]);
    fmgr_info(in, &st->in[a]);
    st->types = hash_combine64(st->types, static_cast<uint64>(type));
  }
  st->phase = kIdle;
  join_group(st, estate);
}

// Done with this scan's statement: its answer read (waiting for it if it is still running) and
// freed.
void finish(RemoteTopk *st) {
  if (st->phase == kSent || st->phase == kPreparing) collect(st);
  PQclear(st->res);
  st->res = nullptr;
  st->phase = kIdle;
}

void end_scan(CustomScanState *node) {
  RemoteTopk *st = reinterpret_cast<RemoteTopk *>(node);
  if (st->conn == nullptr) return;
  finish(st);
  fdw().release_connection(st->conn);
  st->conn = nullptr;
}

void rescan(CustomScanState *node) { finish(reinterpret_cast<RemoteTopk *>(node)); }

void explain_scan(CustomScanState *node, List *, ExplainState *es) {
  if (es->verbose) ExplainPropertyText("Remote SQL", reinterpret_cast<RemoteTopk *>(node)->sql, es);
}

const CustomExecMethods exec_methods = {kName,   begin_scan, exec_scan,   end_scan, rescan,
                                        nullptr, nullptr,    nullptr,     nullptr,  nullptr,
                                        nullptr, nullptr,    explain_scan};

Node *create_state(CustomScan *) {
  RemoteTopk *st = static_cast<RemoteTopk *>(palloc0(sizeof(RemoteTopk)));
  NodeSetTag(st, T_CustomScanState);
  st->css.methods = &exec_methods;
  return reinterpret_cast<Node *>(st);
}

// Does the expression name a system column (ctid, ...) of the relation?
bool names_system_column(Node *n, void *) {
  if (n == nullptr) return false;
  if (IsA(n, Var) && castNode(Var, n)->varattno < 0) return true;
  return expression_tree_walker(
      n, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(names_system_column)), nullptr);
}

}  // namespace

bool remote_topk_applies(RelOptInfo *child) {
  return fanout && !names_system_column(reinterpret_cast<Node *>(child->reltarget->exprs), nullptr);
}

Path *remote_topk_path(PlannerInfo *, RelOptInfo *child, ForeignPath *limited, int group) {
  CustomPath *cp = makeNode(CustomPath);
  cp->path.pathtype = T_CustomScan;
  cp->path.parent = child;
  cp->path.pathtarget = limited->path.pathtarget;
  cp->path.param_info = nullptr;
  cp->path.parallel_aware = false;
  cp->path.parallel_safe = false;
  cp->path.parallel_workers = 0;
  cp->path.rows = limited->path.rows;
  cp->path.startup_cost = limited->path.startup_cost;
  cp->path.total_cost = limited->path.total_cost;
  cp->path.pathkeys = limited->path.pathkeys;
  cp->flags = CUSTOMPATH_SUPPORT_PROJECTION;
  cp->custom_paths = NIL;
  cp->custom_private = list_make2(limited, makeInteger(group));
  cp->methods = &path_methods;
  return &cp->path;
}

void remote_topk_init() {
  DefineCustomBoolVariable(
      "lookalike.shard_fanout",
      "Sends a foreign partition's top-k as one statement, to every shard at once.",
      "With lookalike.partition_topk: each postgres_fdw partition's ORDER BY ... LIMIT k is sent "
      "as one statement on postgres_fdw's connection (no cursor), all shards at once. Off: "
      "postgres_fdw's own foreign scan (a cursor per shard). See docs/scale-out.md.",
      &fanout, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "lookalike.shard_prepare",
      "Prepares the one-statement scan's remote statement once per shard connection.",
      "With lookalike.shard_fanout: each remote top-k statement is a named prepared statement on "
      "postgres_fdw's connection, parsed (and, once the shard uses a generic plan, planned) once; "
      "its parameters, the search settings included, are sent with each execution. Off: an "
      "unnamed statement, parsed and planned on every query (e.g. behind a pooler that discards "
      "sessions). See docs/scale-out.md.",
      &prepare, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  RegisterCustomScanMethods(&scan_methods);
}

}  // namespace lookalike::scaleout
