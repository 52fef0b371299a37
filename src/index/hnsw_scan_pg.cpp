// lookalike_hnsw: index scans for ORDER BY col <op> const [LIMIT k].
//
// The search descends the layers greedily, then runs the HNSW best-first search on layer 0 with
// a candidate list of lookalike.ef_search over the int8 codes. Results go out in batches: each
// batch is the ef_search nearest elements not returned yet, ordered by a lower bound of the true
// distance (hnsw::lower_bound); the executor re-checks the ORDER BY with the heap row and
// re-ranks (xs_recheckorderby), so rows come out in exact distance order within what the index
// found. When the executor asks for more rows than a batch holds (a WHERE clause filtered many
// out), the search resumes where it stopped -- visited set, candidate queue and pool of found but
// unreturned elements are kept -- until lookalike.max_scan_tuples elements have been visited or
// the graph is exhausted. The descent is hnsw::search_layer (hnsw_graph.hpp) through descend();
// layer 0 is the same best-first search, written out here because it is resumable: its state
// lives in the scan between batches, it defers candidates beyond the batch's threshold, keeps
// the neighbour lists it has already read, and counts visits against max_scan_tuples.
// C-style code over palloc'd memory.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "index/hnsw_pg.hpp"
#include "vector/embedding_pg.hpp"

extern "C" {
#include "access/relscan.h"
#include "pgstat.h"
}

using namespace lookalike;
using namespace lookalike::hnswpg;

namespace {

struct ScanResult {
  double lb;
  ItemPointerData heaptid;
};

struct HnswScanState {
  MemoryContext cxt;  // everything of one search; reset by rescan
  bool started;
  bool done;
  bool seq_mode;  // NULL query, or zero query with cosine: every element, no order
  bool null_query;
  BlockNumber seq_blk;
  OffsetNumber seq_off;
  MetaPage meta;
  GraphQuery qy;
  float *q;
  TidSet visited;
  CandHeap cand;       // to expand (nearest first)
  CandArray pool;      // found, not yet returned, not deleted
  CandArray deferred;  // found, too far to be expanded by the current batch
  CandHeap best;       // scratch: the ef nearest of the pool (farthest first)
  int64 nvisited;
  int ef;          // lookalike.ef_search when the scan started (a cursor may outlive a SET)
  bool exhausted;  // no more expansion (limit reached or queue empty)
  ItemPointerData *nb;
  // Copies of the layer-0 neighbour lists of visited elements that may be expanded (slot_size =
  // 2m entries each, lengths in nlists): expanding one then needs no second visit of its page.
  ItemPointerData *lists;
  uint8 *nlists;
  uint32 nslots;
  uint32 cap_slots;
  int slot_size;
  Buffer *bufs;  // read_distances() scratch, 2m each
  float *dists;
  bool *dels;
  ScanResult *batch;
  ItemPointerData *batch_pos;  // run_batch() scratch, ef each
  Buffer *batch_hints;
  int nbatch;
  int ibatch;
};

int cmp_result(const void *a, const void *b) {
  double x = static_cast<const ScanResult *>(a)->lb, y = static_cast<const ScanResult *>(b)->lb;
  return (x > y) - (x < y);
}

// Lower bound, heap TID and deleted flag of the element at pos.
bool read_result(HnswScanState *so, ItemPointer pos, ScanResult *out) {
  Buffer buf = read_buffer_recent(so->qy.index, ItemPointerGetBlockNumber(pos));
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  Page page = BufferGetPage(buf);
  ElementTuple *e = page_element(page, ItemPointerGetOffsetNumber(pos));
  bool ok = !e->deleted && ItemPointerIsValid(&e->heaptid);
  if (ok) {
    hnsw::CodeHeader h2;
    element_get_header2(e, so->meta.m, &h2);
    out->lb =
        hnsw::lower_bound_refined(so->qy.metric, so->q, element_code(e, so->meta.m), e->code_header,
                                  element_code2(e, so->meta.m), h2, so->qy.dim);
    out->heaptid = e->heaptid;
  }
  UnlockReleaseBuffer(buf);
  return ok;
}

// Appends to an array of candidates (palloc'd, grown by doubling).
void append(CandArray *l, DiskCand c) {
  if (l->n == l->cap) {
    l->cap *= 2;
    l->a = static_cast<DiskCand *>(repalloc_huge(l->a, sizeof(DiskCand) * l->cap));
  }
  l->a[l->n++] = c;
}

void array_init(CandArray *l, int cap) {
  l->cap = cap < 16 ? 16 : cap;
  l->n = 0;
  l->a = static_cast<DiskCand *>(
      MemoryContextAllocHuge(CurrentMemoryContext, sizeof(DiskCand) * l->cap));
}

// Reads a newly found element: queued for expansion, and pooled for return unless deleted.
// Returns false for a deleted element.
bool visit(HnswScanState *so, ItemPointer pos, float *dist) {
  bool del;
  read_element(&so->qy, pos, dist, nullptr, &del, 0, nullptr, nullptr);
  so->nvisited++;
  DiskCand c{*dist, *pos, kNoSlot};
  heap_push(&so->cand, c);
  if (!del) append(&so->pool, c);
  return !del;
}

// Room for n more neighbour lists.
void reserve_slots(HnswScanState *so, int n) {
  if (so->nslots + n <= so->cap_slots) return;
  uint32 cap = Max(so->cap_slots * 2, so->nslots + n);
  so->lists = static_cast<ItemPointerData *>(
      repalloc_huge(so->lists, sizeof(ItemPointerData) * so->slot_size * cap));
  so->nlists = static_cast<uint8 *>(repalloc_huge(so->nlists, cap));
  so->cap_slots = cap;
}

void best_offer(HnswScanState *so, float d, int ef) {
  DiskCand c{d, {}, kNoSlot};
  if (so->best.n < ef) {
    heap_push(&so->best, c);
  } else if (d < heap_top(&so->best).dist) {
    heap_pop(&so->best);
    heap_push(&so->best, c);
  }
}

// One batch: resume the layer-0 search, then move the ef nearest of the pool into so->batch.
void run_batch(HnswScanState *so) {
  int ef = so->ef;
  // Elements set aside by the previous batch (too far to be expanded then) become candidates.
  for (int i = 0; i < so->deferred.n; ++i) heap_push(&so->cand, so->deferred.a[i]);
  so->deferred.n = 0;
  // The stop threshold: the ef-th smallest distance among found, unreturned elements.
  so->best.n = 0;
  for (int i = 0; i < so->pool.n; ++i) best_offer(so, so->pool.a[i].dist, ef);
  while (!so->exhausted) {
    if ((so->cand.n == 0 && so->deferred.n == 0) || so->nvisited >= max_scan_tuples) {
      so->exhausted = true;
      break;
    }
    if (so->cand.n == 0) break;  // only deferred ones left: the next batch takes them
    DiskCand c = heap_top(&so->cand);
    if (so->best.n >= ef && c.dist > heap_top(&so->best).dist) break;
    heap_pop(&so->cand);
    CHECK_FOR_INTERRUPTS();
    // The neighbour list: copied when the element was measured, else read from its page.
    int nnb, nt = 0;
    const ItemPointerData *list = so->nb;
    if (c.slot != kNoSlot) {
      list = &so->lists[static_cast<Size>(c.slot) * so->slot_size];
      nnb = so->nlists[c.slot];
    } else {
      read_element(&so->qy, &c.pos, nullptr, nullptr, nullptr, 0, so->nb, &nnb);
    }
    for (int i = 0; i < nnb; ++i)
      if (tidset_add(&so->visited, const_cast<ItemPointer>(&list[i]))) so->nb[nt++] = list[i];
    reserve_slots(so, nt);
    float keep = so->best.n >= ef ? heap_top(&so->best).dist : std::numeric_limits<float>::max();
    uint32 first = so->nslots;
    read_distances(&so->qy, so->nb, nt, so->bufs, so->dists, so->dels, keep,
                   &so->lists[static_cast<Size>(first) * so->slot_size], &so->nlists[first]);
    so->nslots += nt;
    so->nvisited += nt;
    for (int i = 0; i < nt; ++i) {
      DiskCand e{so->dists[i], so->nb[i], so->nlists[first + i] != kNoList ? first + i : kNoSlot};
      // One not nearer than the threshold now will not be expanded in this batch (the threshold
      // only falls): set aside, not heap-ordered.
      if (e.dist < keep)
        heap_push(&so->cand, e);
      else
        append(&so->deferred, e);
      if (!so->dels[i]) {
        append(&so->pool, e);
        best_offer(so, e.dist, ef);
      }
    }
  }
  so->nbatch = 0;
  so->ibatch = 0;
  // The ef nearest of the pool (selection, not a sort: the batch is sorted by lower bound).
  int n = Min(ef, so->pool.n);
  if (n < so->pool.n)
    std::nth_element(so->pool.a, so->pool.a + n, so->pool.a + so->pool.n,
                     [](const DiskCand &a, const DiskCand &b) { return a.dist < b.dist; });
  for (int i = 0; i < n; ++i) so->batch_pos[i] = so->pool.a[i].pos;
  memmove(so->pool.a, so->pool.a + n, sizeof(DiskCand) * (so->pool.n - n));
  so->pool.n -= n;
  prefetch_elements(so->qy.index, so->batch_pos, n, 0, so->batch_hints);
  for (int i = 0; i < n; ++i)
    if (read_result(so, &so->batch_pos[i], &so->batch[so->nbatch])) so->nbatch++;
  qsort(so->batch, so->nbatch, sizeof(ScanResult), cmp_result);
  if (so->nbatch == 0 && so->pool.n == 0 && so->exhausted) so->done = true;
}

void start_search(IndexScanDesc scan, HnswScanState *so) {
  Relation index = scan->indexRelation;
  MemoryContext old = MemoryContextSwitchTo(so->cxt);
  read_meta(index, &so->meta);
  so->started = true;
  if (scan->numberOfOrderBys == 0 || scan->orderByData == nullptr)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("a lookalike_hnsw index can only be scanned with ORDER BY a distance")));
  Metric metric = meta_metric(&so->meta);
  so->qy = GraphQuery{index, metric, static_cast<int>(so->meta.dim), so->meta.m, nullptr, 0.0f};
  ScanKey key = &scan->orderByData[0];
  if (key->sk_flags & SK_ISNULL) {
    so->seq_mode = true;
    so->null_query = true;
  } else {
    Embedding *e = datum_get_embedding(key->sk_argument);
    if (so->meta.dim != 0 && e->dim != so->meta.dim)
      ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                      errmsg("different embedding dimensions %u and %d", so->meta.dim, e->dim)));
    so->q = static_cast<float *>(palloc(sizeof(float) * Max(e->dim, 1)));
    if (!prepare_vector(metric, e->x, e->dim, so->q)) so->seq_mode = true;
    for (int i = 0; i < e->dim; ++i) so->qy.qnorm2 += so->q[i] * so->q[i];
    so->qy.q = so->q;
    // The query's int8 code: the traversal's distances are then int8 x int8, as the build's.
    int8_t *qcode = static_cast<int8_t *>(palloc(Max(e->dim, 1)));
    hnsw::quantize(so->q, e->dim, qcode, &so->qy.qh);
    so->qy.qcode = qcode;
  }
  if (so->seq_mode) {
    so->seq_blk = 1;
    so->seq_off = FirstOffsetNumber;
    MemoryContextSwitchTo(old);
    return;
  }
  int ef = ef_search;
  so->ef = ef;
  tidset_init(&so->visited, ef * 32);
  heap_init(&so->cand, ef * 16, true);
  array_init(&so->pool, ef * 16);
  array_init(&so->deferred, ef * 16);
  heap_init(&so->best, ef + 1, false);
  so->nb = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * 2 * so->meta.m));
  so->bufs = static_cast<Buffer *>(palloc(sizeof(Buffer) * 2 * so->meta.m));
  so->dists = static_cast<float *>(palloc(sizeof(float) * 2 * so->meta.m));
  so->dels = static_cast<bool *>(palloc(sizeof(bool) * 2 * so->meta.m));
  so->slot_size = 2 * so->meta.m;
  so->cap_slots = ef * 8;
  so->lists = static_cast<ItemPointerData *>(
      palloc(sizeof(ItemPointerData) * so->slot_size * so->cap_slots));
  so->nlists = static_cast<uint8 *>(palloc(so->cap_slots));
  so->batch = static_cast<ScanResult *>(palloc(sizeof(ScanResult) * ef));
  so->batch_pos = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * ef));
  so->batch_hints = static_cast<Buffer *>(palloc(sizeof(Buffer) * ef));
  DiskCand ep;
  if (!descend(&so->qy, &so->meta, 0, &ep)) {
    so->done = true;
  } else {
    float d;
    tidset_add(&so->visited, &ep.pos);
    visit(so, &ep.pos, &d);
  }
  MemoryContextSwitchTo(old);
}

// Sequential mode: every live element, in physical order, with a NULL or NaN distance.
bool next_sequential(IndexScanDesc scan, HnswScanState *so) {
  Relation index = scan->indexRelation;
  BlockNumber nblocks = RelationGetNumberOfBlocks(index);
  while (so->seq_blk < nblocks) {
    CHECK_FOR_INTERRUPTS();
    Buffer buf = ReadBuffer(index, so->seq_blk);
    LockBuffer(buf, BUFFER_LOCK_SHARE);
    Page page = BufferGetPage(buf);
    OffsetNumber maxoff = PageIsNew(page) ? 0 : PageGetMaxOffsetNumber(page);
    while (so->seq_off <= maxoff) {
      ElementTuple *e = page_element(page, so->seq_off);
      so->seq_off++;
      if (e->deleted || !ItemPointerIsValid(&e->heaptid)) continue;
      scan->xs_heaptid = e->heaptid;
      UnlockReleaseBuffer(buf);
      scan->xs_recheck = false;
      scan->xs_recheckorderby = true;
      scan->xs_orderbynulls[0] = so->null_query;
      scan->xs_orderbyvals[0] = so->null_query
                                    ? static_cast<Datum>(0)
                                    : Float8GetDatum(std::numeric_limits<double>::quiet_NaN());
      return true;
    }
    UnlockReleaseBuffer(buf);
    so->seq_blk++;
    so->seq_off = FirstOffsetNumber;
  }
  return false;
}

}  // namespace

extern "C" IndexScanDesc lookalike_hnsw_beginscan(Relation index, int nkeys, int norderbys) {
  IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
  HnswScanState *so = static_cast<HnswScanState *>(palloc0(sizeof(HnswScanState)));
  so->cxt =
      AllocSetContextCreate(CurrentMemoryContext, "lookalike_hnsw scan", ALLOCSET_DEFAULT_SIZES);
  scan->opaque = so;
  // The AM allocates the ORDER BY value arrays (the executor reads them for the re-check).
  scan->xs_orderbyvals = static_cast<Datum *>(palloc0(sizeof(Datum) * Max(norderbys, 1)));
  scan->xs_orderbynulls = static_cast<bool *>(palloc(sizeof(bool) * Max(norderbys, 1)));
  scan->xs_orderbynulls[0] = true;
  return scan;
}

extern "C" void lookalike_hnsw_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
                                      int norderbys) {
  HnswScanState *so = static_cast<HnswScanState *>(scan->opaque);
  MemoryContextReset(so->cxt);
  MemoryContext cxt = so->cxt;
  memset(so, 0, sizeof(*so));
  so->cxt = cxt;
  if (keys && scan->numberOfKeys > 0)
    memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
  if (orderbys && scan->numberOfOrderBys > 0)
    memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
  (void)nkeys;
  (void)norderbys;
}

extern "C" bool lookalike_hnsw_gettuple(IndexScanDesc scan, ScanDirection) {
  HnswScanState *so = static_cast<HnswScanState *>(scan->opaque);
  if (!so->started) {
    start_search(scan, so);
    pgstat_count_index_scan(scan->indexRelation);
  }
  if (so->seq_mode) return next_sequential(scan, so);
  MemoryContext old = MemoryContextSwitchTo(so->cxt);
  while (!so->done && so->ibatch >= so->nbatch) run_batch(so);
  MemoryContextSwitchTo(old);
  if (so->done && so->ibatch >= so->nbatch) return false;
  ScanResult *r = &so->batch[so->ibatch++];
  scan->xs_heaptid = r->heaptid;
  scan->xs_recheck = false;
  scan->xs_recheckorderby = true;
  scan->xs_orderbynulls[0] = false;
  scan->xs_orderbyvals[0] = Float8GetDatum(r->lb);
  return true;
}

extern "C" void lookalike_hnsw_endscan(IndexScanDesc scan) {
  HnswScanState *so = static_cast<HnswScanState *>(scan->opaque);
  MemoryContextDelete(so->cxt);
  pfree(so);
  scan->opaque = nullptr;
}
