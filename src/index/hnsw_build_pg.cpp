// lookalike_hnsw: the index build. The table is scanned once; every row is added to an HNSW
// graph in memory (hnsw::Graph, pure C++), which is then written to pages in one pass and
// WAL-logged whole. When the graph would outgrow maintenance_work_mem, the graph so far is
// written out (NOTICE) and the remaining rows are inserted one by one on disk, like aminsert.
//
// Rows are appended to the graph as the scan reads them (quantised, not linked yet); every
// kLinkBatch rows the scan pauses and the pending rows are linked into the graph by
// lookalike.build_threads threads (hnsw::Graph::link_pending): this backend's thread, which also
// polls for interrupts, and helper threads that run only pure C++ over the graph (no PostgreSQL
// call, no palloc, every signal blocked) and are joined before link_pending returns. On an
// interrupt the threads stop after their current element, are joined, and only then does this
// thread call CHECK_FOR_INTERRUPTS (which may raise an error: the graph is then freed with the
// build's memory context). Before the pages are written, a second pass over layer 0
// (hnsw::Graph::refine, same threads) lets every element search the finished graph for its
// neighbours again, and every element is made reachable (hnsw::Graph::connect_unreachable).
//
// The graph is a C++ object owned by the build's memory context (deleted by a reset callback),
// so no frame here owns a C++ object while calling PostgreSQL; calls into the pure core that may
// throw (Graph::append / link_pending, std::bad_alloc) run under pg::run_at_boundary, which
// raises a C++ exception as a PostgreSQL error once its catch block is left.
#include <unistd.h>

#include <algorithm>
#include <new>

#include "index/hnsw_pg.hpp"
#include "vector/embedding_pg.hpp"

extern "C" {
#include "access/tableam.h"
#include "access/xloginsert.h"
#include "commands/progress.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/backend_progress.h"
}

using namespace lookalike;
using namespace lookalike::hnswpg;

namespace {

// Rows appended before the scan pauses to link them (a few milliseconds of each thread's work
// per pause; thread start-up is paid once per batch).
constexpr size_t kLinkBatch = 4096;

struct BuildState {
  Relation heap;
  Relation index;
  Metric metric;
  int dim;  // 0 until the first row when the column has no typmod
  int m;
  int ef_construction;
  hnsw::Graph *graph;  // owned by build_cxt (reset callback)
  ItemPointerData *tids;
  size_t ntids;
  size_t cap_tids;
  double heap_tuples;
  double index_tuples;
  bool on_disk;  // the graph did not fit: rows go straight to disk
  int threads;   // lookalike.build_threads, resolved
  size_t mem_limit;
  float *xbuf;
  MemoryContext build_cxt;
  MemoryContext tmp_cxt;
};

void delete_graph(void *arg) {
  auto *st = static_cast<BuildState *>(arg);
  delete st->graph;
  st->graph = nullptr;
}

void check_dims(Relation index, int dim, int m) {
  if (dim < 1)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("lookalike_hnsw cannot index embeddings of %d dimensions", dim)));
  if (element_size(dim, m, hnsw::kMaxLevel) > max_element_size())
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    errmsg("embeddings of %d dimensions are too large for lookalike_hnsw index "
                           "\"%s\" with m = %d",
                           dim, RelationGetRelationName(index), m),
                    errhint("The int8 code of a vector and its neighbour lists must fit on one "
                            "%d-byte page: use fewer dimensions or a smaller m.",
                            BLCKSZ)));
}

// Writes the metapage (block 0) of a new index, with an empty graph.
void write_metapage(Relation index, ForkNumber fork, const BuildState *st) {
  Buffer buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, nullptr);
  LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
  Page page = BufferGetPage(buf);
  init_page(page, kPageMeta);
  MetaPage *m = page_meta(page);
  m->magic = kMagic;
  m->version = kIndexVersion;
  m->dim = st->dim;
  m->m = static_cast<uint16>(st->m);
  m->ef_construction = static_cast<uint16>(st->ef_construction);
  m->metric = static_cast<uint8>(st->metric);
  m->entry_blk = InvalidBlockNumber;
  m->entry_off = InvalidOffsetNumber;
  m->entry_level = -1;
  m->insert_blk = InvalidBlockNumber;
  ((PageHeader)page)->pd_lower = reinterpret_cast<char *>(m + 1) - reinterpret_cast<char *>(page);
  MarkBufferDirty(buf);
  if (fork == INIT_FORKNUM) log_newpage_buffer(buf, true);
  UnlockReleaseBuffer(buf);
}

// Threads for linking: lookalike.build_threads, or 1 + max_parallel_maintenance_workers when it
// is 0; at most the number of CPUs online (so never more threads than cores), at least 1.
int resolve_threads() {
  int t = build_threads > 0 ? build_threads : 1 + max_parallel_maintenance_workers;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus > 0 && t > cpus) t = static_cast<int>(cpus);
  return t < 1 ? 1 : t;
}

// Links every appended row into the graph (see the file comment).
void link_pending(BuildState *st) {
  hnsw::Graph *g = st->graph;
  while (g != nullptr && g->pending() > 0) {
    pg::run_at_boundary<size_t>([&] {
      return g->link_pending(st->threads, [](size_t) {
        // Only reads PostgreSQL's interrupt flags: no call, no error from here.
        return !(INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED());
      });
    });
    CHECK_FOR_INTERRUPTS();
  }
}

// Second pass over layer 0 (hnsw::Graph::refine), with the threads and interrupt handling of
// link_pending(); then every element is made reachable. It takes about as long as the first
// pass, so it is a phase of its own in pg_stat_progress_create_index ("refining graph"), run in
// chunks of ~1 % of the rows so that tuples_done moves (the progress is reported between
// chunks, outside the threads).
void refine_graph(BuildState *st) {
  hnsw::Graph *g = st->graph;
  size_t n = g->size(), done = 0;
  const size_t chunk = std::max<size_t>(1024, n / 100);
  pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseRefine);
  pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, static_cast<int64>(n));
  pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);
  while (done < n) {
    const size_t end = std::min(n, done + chunk);
    done += pg::run_at_boundary<size_t>([&] {
      return g->refine(done, end, st->threads, [](size_t) {
        return !(INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED());
      });
    });
    CHECK_FOR_INTERRUPTS();
    pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, static_cast<int64>(done));
  }
  pg::run_at_boundary<size_t>([&] { return g->connect_unreachable(); });
}

// Links the pending rows, runs the second pass, then writes the in-memory graph to element pages
// after the metapage, sets the entry point, and WAL-logs every page (the index is new:
// whole-page images).
void flush_graph(BuildState *st) {
  link_pending(st);
  refine_graph(st);
  Relation index = st->index;
  const hnsw::Graph &g = *st->graph;
  size_t n = g.size();
  int m = st->m, dim = st->dim;
  pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseWrite);
  pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, static_cast<int64>(n));
  pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);
  // Positions: elements in id order, packed into pages from block 1.
  auto *pos = static_cast<ItemPointerData *>(
      MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemPointerData) * (n + 1)));
  const Size room = BLCKSZ - SizeOfPageHeaderData - MAXALIGN(sizeof(PageOpaque));
  BlockNumber blk = 1;
  Size used = 0;
  OffsetNumber off = FirstOffsetNumber;
  for (size_t id = 0; id < n; ++id) {
    Size sz = MAXALIGN(element_size(dim, m, g.level(id))) + sizeof(ItemIdData);
    if (used + sz > room) {
      blk++;
      used = 0;
      off = FirstOffsetNumber;
    }
    ItemPointerSet(&pos[id], blk, off);
    off++;
    used += sz;
  }
  PGAlignedBlock page_buf;
  Page page = page_buf.data;
  ElementTuple *tup = static_cast<ElementTuple *>(palloc0(max_element_size()));
  size_t id = 0;
  BlockNumber last = n > 0 ? ItemPointerGetBlockNumber(&pos[n - 1]) : 0;
  for (BlockNumber b = 1; b <= last; ++b) {
    CHECK_FOR_INTERRUPTS();
    init_page(page, kPageElement);
    for (; id < n && ItemPointerGetBlockNumber(&pos[id]) == b; ++id) {
      int level = g.level(id);
      Size size = element_size(dim, m, level);
      memset(tup, 0, size);
      tup->level = static_cast<uint8>(level);
      tup->dim = static_cast<uint16>(dim);
      tup->heaptid = st->tids[id];
      tup->code_header = g.header(id);
      for (int l = 0; l <= level; ++l) {
        int nn;
        const uint32_t *nb = g.neighbors(id, l, &nn);
        ItemPointerData *dst = &tup->neighbors[layer_offset(m, l)];
        int cap = hnsw::max_neighbors(m, l);
        for (int i = 0; i < cap; ++i) {
          if (i < nn)
            dst[i] = pos[nb[i]];
          else
            ItemPointerSetInvalid(&dst[i]);
        }
      }
      memcpy(element_code(tup, m), g.code(id), dim);
      element_set_header2(tup, m, g.header2(id));
      memcpy(element_code2(tup, m), g.code2(id), dim);
      if (PageAddItem(page, reinterpret_cast<Item>(tup), size, InvalidOffsetNumber, false, false) !=
          ItemPointerGetOffsetNumber(&pos[id]))
        elog(ERROR, "lookalike_hnsw build: page layout mismatch");
    }
    Buffer buf = ReadBuffer(index, P_NEW);
    if (BufferGetBlockNumber(buf) != b) elog(ERROR, "lookalike_hnsw build: unexpected block");
    LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
    memcpy(BufferGetPage(buf), page, BLCKSZ);
    MarkBufferDirty(buf);
    UnlockReleaseBuffer(buf);
    pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, static_cast<int64>(id));
  }
  pfree(tup);
  // Entry point and insert block, then WAL for everything written so far.
  Buffer buf = ReadBuffer(index, kMetaBlock);
  LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
  MetaPage *mp = page_meta(BufferGetPage(buf));
  mp->dim = dim;
  if (n > 0) {
    mp->entry_blk = ItemPointerGetBlockNumber(&pos[g.entry_point()]);
    mp->entry_off = ItemPointerGetOffsetNumber(&pos[g.entry_point()]);
    mp->entry_level = static_cast<int16>(g.max_level());
    mp->insert_blk = last;
  }
  MarkBufferDirty(buf);
  UnlockReleaseBuffer(buf);
  if (RelationNeedsWAL(index))
    log_newpage_range(index, MAIN_FORKNUM, 0, RelationGetNumberOfBlocks(index), true);
  pfree(pos);
}

void add_row(BuildState *st, const float *x, ItemPointer tid) {
  if (st->on_disk) {
    MetaPage meta;
    read_meta(st->index, &meta);
    insert_element(st->index, &meta, x, tid);
    return;
  }
  int level = hnsw::random_level(1.0 - pg_prng_double(&pg_global_prng_state), st->m);
  size_t need = st->graph->memory_bytes() + hnsw::Graph::element_bytes(st->dim, st->m, level) +
                sizeof(ItemPointerData) * (st->ntids + 1);
  if (need > st->mem_limit) {
    ereport(NOTICE,
            (errmsg("lookalike_hnsw graph no longer fits into maintenance_work_mem after %zu "
                    "tuples",
                    st->ntids),
             errdetail("The remaining rows are inserted on disk one by one, which is slower."),
             errhint("Increase maintenance_work_mem to speed up builds.")));
    flush_graph(st);
    st->on_disk = true;
    pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseLoad);
    add_row(st, x, tid);
    return;
  }
  if (st->ntids == st->cap_tids) {
    MemoryContext old = MemoryContextSwitchTo(st->build_cxt);
    st->cap_tids *= 2;
    st->tids = static_cast<ItemPointerData *>(
        repalloc_huge(st->tids, sizeof(ItemPointerData) * st->cap_tids));
    MemoryContextSwitchTo(old);
  }
  hnsw::Graph *g = st->graph;
  pg::run_at_boundary<int>([&] {
    g->append(x, level);
    return 0;
  });
  st->tids[st->ntids++] = *tid;
  if (g->pending() >= kLinkBatch) link_pending(st);
}

void build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool,
                    void *state) {
  auto *st = static_cast<BuildState *>(state);
  st->heap_tuples += 1;
  if (isnull[0]) return;
  MemoryContext old = MemoryContextSwitchTo(st->tmp_cxt);
  Embedding *e = datum_get_embedding(values[0]);
  if (st->dim == 0) {
    check_dims(index, e->dim, st->m);
    st->dim = e->dim;
    MemoryContext o2 = MemoryContextSwitchTo(st->build_cxt);
    st->graph = pg::run_at_boundary<hnsw::Graph *>(
        [&] { return new hnsw::Graph(st->dim, st->metric, st->m, st->ef_construction); });
    st->xbuf = static_cast<float *>(palloc(sizeof(float) * st->dim));
    MemoryContextSwitchTo(o2);
  }
  if (e->dim != st->dim)
    ereport(
        ERROR,
        (errcode(ERRCODE_DATA_EXCEPTION), errmsg("expected %d dimensions, not %d", st->dim, e->dim),
         errdetail("All embeddings in a lookalike_hnsw index have the same dimension.")));
  if (prepare_vector(st->metric, e->x, st->dim, st->xbuf)) {
    add_row(st, st->xbuf, tid);
    st->index_tuples += 1;
    if (static_cast<int64>(st->index_tuples) % 1000 == 0)
      pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
                                   static_cast<int64>(st->index_tuples));
  }
  MemoryContextSwitchTo(old);
  MemoryContextReset(st->tmp_cxt);
}

void init_state(BuildState *st, Relation heap, Relation index) {
  memset(st, 0, sizeof(*st));
  st->heap = heap;
  st->index = index;
  st->metric = index_metric(index);
  st->m = option_m(index);
  st->ef_construction = option_ef_construction(index);
  if (st->ef_construction < 2 * st->m)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ef_construction must be greater than or equal to 2 * m"),
                    errdetail("m = %d, ef_construction = %d.", st->m, st->ef_construction)));
  int32 typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
  st->dim = typmod > 0 ? typmod : 0;
  if (st->dim > 0) check_dims(index, st->dim, st->m);
  st->mem_limit = static_cast<size_t>(maintenance_work_mem) * 1024;
  st->threads = resolve_threads();
}

}  // namespace

extern "C" IndexBuildResult *lookalike_hnsw_build(Relation heap, Relation index, IndexInfo *info) {
  if (RelationGetNumberOfBlocks(index) != 0)
    elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
  BuildState st;
  init_state(&st, heap, index);
  st.build_cxt =
      AllocSetContextCreate(CurrentMemoryContext, "lookalike_hnsw build", ALLOCSET_DEFAULT_SIZES);
  st.tmp_cxt = AllocSetContextCreate(CurrentMemoryContext, "lookalike_hnsw build tuple",
                                     ALLOCSET_DEFAULT_SIZES);
  MemoryContextCallback *cb = static_cast<MemoryContextCallback *>(
      MemoryContextAlloc(st.build_cxt, sizeof(MemoryContextCallback)));
  cb->func = delete_graph;
  cb->arg = &st;
  MemoryContextRegisterResetCallback(st.build_cxt, cb);
  MemoryContext old = MemoryContextSwitchTo(st.build_cxt);
  st.cap_tids = 1024;
  st.tids = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * st.cap_tids));
  if (st.dim > 0) {
    st.graph = pg::run_at_boundary<hnsw::Graph *>(
        [&] { return new hnsw::Graph(st.dim, st.metric, st.m, st.ef_construction); });
    st.xbuf = static_cast<float *>(palloc(sizeof(float) * st.dim));
  }
  write_metapage(index, MAIN_FORKNUM, &st);
  pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseLoad);
  MemoryContextSwitchTo(old);
  table_index_build_scan(heap, index, info, true, true, build_callback, &st, nullptr);
  MemoryContextSwitchTo(st.build_cxt);
  if (!st.on_disk) {
    if (st.graph != nullptr) {
      flush_graph(&st);
    } else {
      // No row: WAL-log the metapage (dimension still open when the column has no typmod).
      if (RelationNeedsWAL(index))
        log_newpage_range(index, MAIN_FORKNUM, 0, RelationGetNumberOfBlocks(index), true);
    }
  }
  MemoryContextSwitchTo(old);
  IndexBuildResult *res = static_cast<IndexBuildResult *>(palloc(sizeof(IndexBuildResult)));
  res->heap_tuples = st.heap_tuples;
  res->index_tuples = st.index_tuples;
  MemoryContextDelete(st.tmp_cxt);
  MemoryContextDelete(st.build_cxt);
  return res;
}

extern "C" void lookalike_hnsw_buildempty(Relation index) {
  BuildState st;
  init_state(&st, nullptr, index);
  write_metapage(index, INIT_FORKNUM, &st);
}
