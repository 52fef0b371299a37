// lookalike_hnsw: pages, the metapage, TID sets, candidate heaps and the on-disk graph search
// shared by insert, scan and VACUUM. C-style code over palloc'd memory (see hnsw_pg.hpp).
#include <cfloat>
#include <cmath>

#include "index/hnsw_pg.hpp"

extern "C" {
#include "access/genam.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "optimizer/optimizer.h"
#include "storage/buf_internals.h"
#include "utils/selfuncs.h"
#include "utils/memutils.h"
#include "utils/spccache.h"
}

using namespace lookalike;
using namespace lookalike::hnswpg;

namespace lookalike::hnswpg {

void init_page(Page page, uint16 kind) {
  PageInit(page, BLCKSZ, sizeof(PageOpaque));
  page_opaque(page)->kind = kind;
  page_opaque(page)->page_id = kPageId;
}

void read_meta(Relation index, MetaPage *out) {
  Buffer buf = ReadBuffer(index, kMetaBlock);
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  Page page = BufferGetPage(buf);
  MetaPage *m = page_meta(page);
  if (PageIsNew(page) || page_opaque(page)->page_id != kPageId || m->magic != kMagic) {
    UnlockReleaseBuffer(buf);
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("index \"%s\" is not a lookalike_hnsw index", RelationGetRelationName(index))));
  }
  if (m->version != kIndexVersion) {
    UnlockReleaseBuffer(buf);
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("index \"%s\" has on-disk version %u, this build reads version %u",
                           RelationGetRelationName(index), m->version, kIndexVersion),
                    errhint("REINDEX the index.")));
  }
  *out = *m;
  UnlockReleaseBuffer(buf);
}

void update_meta(Relation index, bool set_entry, ItemPointer entry, int entry_level,
                 BlockNumber insert_blk) {
  Buffer buf = ReadBuffer(index, kMetaBlock);
  LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
  GenericXLogState *state = GenericXLogStart(index);
  Page page = GenericXLogRegisterBuffer(state, buf, 0);
  MetaPage *m = page_meta(page);
  if (set_entry) {
    if (entry == nullptr) {
      m->entry_blk = InvalidBlockNumber;
      m->entry_off = InvalidOffsetNumber;
      m->entry_level = -1;
    } else {
      m->entry_blk = ItemPointerGetBlockNumber(entry);
      m->entry_off = ItemPointerGetOffsetNumber(entry);
      m->entry_level = static_cast<int16>(entry_level);
    }
  }
  if (insert_blk != InvalidBlockNumber) m->insert_blk = insert_blk;
  GenericXLogFinish(state);
  UnlockReleaseBuffer(buf);
}

bool prepare_vector(Metric metric, const float *x, int dim, float *out) {
  double s = 0;
  for (int i = 0; i < dim; ++i) {
    out[i] = x[i];
    s += static_cast<double>(x[i]) * x[i];
  }
  if (metric != Metric::kCosine) return true;
  if (!(s > 0)) return false;
  double inv = 1.0 / std::sqrt(s);
  for (int i = 0; i < dim; ++i) out[i] = static_cast<float>(x[i] * inv);
  return true;
}

// ---- TidSet --------------------------------------------------------------------------------

static inline uint64 tid_key(ItemPointer t) {
  return (static_cast<uint64>(ItemPointerGetBlockNumber(t)) << 16) | ItemPointerGetOffsetNumber(t);
}

static inline uint32 tid_hash(uint64 k) {
  k ^= k >> 33;
  k *= UINT64CONST(0xff51afd7ed558ccd);
  k ^= k >> 33;
  return static_cast<uint32>(k);
}

void tidset_init(TidSet *s, uint32 cap) {
  uint32 c = 64;
  while (c < cap * 2) c <<= 1;
  s->cap = c;
  s->count = 0;
  s->keys = static_cast<uint64 *>(MemoryContextAllocHuge(CurrentMemoryContext, sizeof(uint64) * c));
  for (uint32 i = 0; i < c; ++i) s->keys[i] = ~UINT64CONST(0);
}

static void tidset_insert_key(TidSet *s, uint64 k) {
  uint32 mask = s->cap - 1;
  for (uint32 i = tid_hash(k) & mask;; i = (i + 1) & mask)
    if (s->keys[i] == ~UINT64CONST(0)) {
      s->keys[i] = k;
      s->count++;
      return;
    }
}

void tidset_clear(TidSet *s) {
  for (uint32 i = 0; i < s->cap; ++i) s->keys[i] = ~UINT64CONST(0);
  s->count = 0;
}

bool tidset_contains(const TidSet *s, ItemPointer tid) {
  uint64 k = tid_key(tid);
  uint32 mask = s->cap - 1;
  for (uint32 i = tid_hash(k) & mask;; i = (i + 1) & mask) {
    if (s->keys[i] == k) return true;
    if (s->keys[i] == ~UINT64CONST(0)) return false;
  }
}

bool tidset_add(TidSet *s, ItemPointer tid) {
  if (tidset_contains(s, tid)) return false;
  if ((s->count + 1) * 2 > s->cap) {
    uint64 *old = s->keys;
    uint32 oldcap = s->cap;
    s->cap *= 2;
    s->count = 0;
    s->keys = static_cast<uint64 *>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(uint64) * s->cap));
    for (uint32 i = 0; i < s->cap; ++i) s->keys[i] = ~UINT64CONST(0);
    for (uint32 i = 0; i < oldcap; ++i)
      if (old[i] != ~UINT64CONST(0)) tidset_insert_key(s, old[i]);
    pfree(old);
  }
  tidset_insert_key(s, tid_key(tid));
  return true;
}

// ---- candidate heaps -----------------------------------------------------------------------

void heap_init(CandHeap *h, int cap, bool is_min) {
  h->cap = cap < 16 ? 16 : cap;
  h->n = 0;
  h->is_min = is_min;
  h->a = static_cast<DiskCand *>(
      MemoryContextAllocHuge(CurrentMemoryContext, sizeof(DiskCand) * h->cap));
}

static inline bool before(const CandHeap *h, const DiskCand &x, const DiskCand &y) {
  return h->is_min ? x.dist < y.dist : x.dist > y.dist;
}

void heap_push(CandHeap *h, DiskCand c) {
  if (h->n == h->cap) {
    h->cap *= 2;
    h->a = static_cast<DiskCand *>(repalloc_huge(h->a, sizeof(DiskCand) * h->cap));
  }
  int i = h->n++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!before(h, c, h->a[p])) break;
    h->a[i] = h->a[p];
    i = p;
  }
  h->a[i] = c;
}

DiskCand heap_pop(CandHeap *h) {
  DiskCand top = h->a[0];
  DiskCand last = h->a[--h->n];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1;
    if (l >= h->n) break;
    int c = (l + 1 < h->n && before(h, h->a[l + 1], h->a[l])) ? l + 1 : l;
    if (!before(h, h->a[c], last)) break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (h->n > 0) h->a[i] = last;
  return top;
}

// ---- reading elements and searching --------------------------------------------------------

// The buffer that last held each block of the index scanned last (backend-local). A scan reads
// about a thousand elements, each a buffer lookup in the shared hash table; ReadRecentBuffer
// pins a remembered buffer without that lookup when it still holds the block (it checks the
// buffer's tag, so a stale entry only costs the ordinary ReadBuffer).
static struct {
  RelFileNode node;
  BlockNumber n;
  Buffer *buf;
} recent_buffers;

Buffer read_buffer_recent(Relation index, BlockNumber blk) {
  if (RelationUsesLocalBuffers(index)) return ReadBuffer(index, blk);
  if (recent_buffers.buf == nullptr || !RelFileNodeEquals(recent_buffers.node, index->rd_node)) {
    if (recent_buffers.buf != nullptr)
      memset(recent_buffers.buf, 0, sizeof(Buffer) * recent_buffers.n);
    recent_buffers.node = index->rd_node;
  }
  if (blk >= recent_buffers.n) {
    BlockNumber n = Max(blk + 1, Max(recent_buffers.n * 2, 1024));
    Buffer *b = static_cast<Buffer *>(MemoryContextAllocExtended(
        TopMemoryContext, sizeof(Buffer) * n, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO));
    if (recent_buffers.buf != nullptr) {
      memcpy(b, recent_buffers.buf, sizeof(Buffer) * recent_buffers.n);
      pfree(recent_buffers.buf);
    }
    recent_buffers.buf = b;
    recent_buffers.n = n;
  }
  Buffer b = recent_buffers.buf[blk];
  if (b != InvalidBuffer && ReadRecentBuffer(index->rd_node, MAIN_FORKNUM, blk, b)) return b;
  b = ReadBuffer(index, blk);
  recent_buffers.buf[blk] = b;
  return b;
}

// The graph distance of the query to an element (its code).
static inline float query_distance(const GraphQuery *qy, ElementTuple *e) {
  if (qy->qcode != nullptr)
    return hnsw::pair_distance(qy->metric, qy->qcode, qy->qh, element_code(e, qy->m),
                               e->code_header, qy->dim);
  return hnsw::code_distance(qy->metric, qy->q, qy->qnorm2, element_code(e, qy->m), e->code_header,
                             qy->dim);
}

// Checks that pos names an element on the (share-locked) page; raises XX001 otherwise. Every
// page but the metapage (block 0) is an element page, so the block number stands for the page
// kind in the special space (which lies in the page's other 4 kB half: one cache and TLB miss
// less per element visited); the tuple's dimension must be the index's.
static ElementTuple *checked_element(const GraphQuery *qy, Buffer buf, ItemPointer pos) {
  BlockNumber blk = ItemPointerGetBlockNumber(pos);
  OffsetNumber off = ItemPointerGetOffsetNumber(pos);
  Page page = BufferGetPage(buf);
  if (blk == kMetaBlock || PageIsNew(page) || off < FirstOffsetNumber ||
      off > PageGetMaxOffsetNumber(page) || !ItemIdIsNormal(PageGetItemId(page, off)) ||
      ItemIdGetLength(PageGetItemId(page, off)) < element_size(qy->dim, qy->m, 0) ||
      page_element(page, off)->dim != qy->dim) {
    UnlockReleaseBuffer(buf);
    ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                    errmsg("lookalike_hnsw index \"%s\" links to a missing element (%u,%u)",
                           RelationGetRelationName(qy->index), blk, off),
                    errhint("REINDEX the index.")));
  }
  return page_element(page, off);
}

void read_element(const GraphQuery *qy, ItemPointer pos, float *dist, int *level, bool *deleted,
                  int layer, ItemPointerData *nb, int *nnb) {
  Buffer buf = read_buffer_recent(qy->index, ItemPointerGetBlockNumber(pos));
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  ElementTuple *e = checked_element(qy, buf, pos);
  if (dist != nullptr) *dist = query_distance(qy, e);
  if (level) *level = e->level;
  if (deleted) *deleted = e->deleted != 0;
  if (nb != nullptr) {
    int n = 0;
    if (layer <= e->level) {
      int cap = hnsw::max_neighbors(qy->m, layer);
      ItemPointerData *src = &e->neighbors[layer_offset(qy->m, layer)];
      for (int i = 0; i < cap; ++i)
        if (ItemPointerIsValid(&src[i])) nb[n++] = src[i];
    }
    *nnb = n;
  }
  UnlockReleaseBuffer(buf);
}

// The buffer that probably holds blk (the last one that did in this backend), without pinning
// it, or InvalidBuffer: only for prefetch hints.
static Buffer recent_buffer_hint(Relation index, BlockNumber blk) {
  if (RelationUsesLocalBuffers(index) || recent_buffers.buf == nullptr || blk >= recent_buffers.n ||
      !RelFileNodeEquals(recent_buffers.node, index->rd_node))
    return InvalidBuffer;
  return recent_buffers.buf[blk];
}

void prefetch_elements(Relation index, const ItemPointerData *pos, int n, uint32 skip_tail,
                       Buffer *hints) {
  // Visiting an element costs a few cache misses -- its buffer descriptor (pin and content
  // lock), page header, line pointer, tuple -- which the CPU overlaps when it
  // knows the addresses early. The buffer of a block is the one that held it last (a hint: a
  // buffer is not pinned here, so it may hold another page by now; the reads below then only
  // cost a useless prefetch, and the real read pins and checks the block). First the
  // descriptors, page headers and line pointers of all n, then the tuples (the line pointers are
  // read unlocked, only as prefetch hints; a stale value is clamped to the page).
  for (int i = 0; i < n; ++i) {
    Buffer b = recent_buffer_hint(index, ItemPointerGetBlockNumber(&pos[i]));
    hints[i] = b;
    if (b == InvalidBuffer) continue;
    __builtin_prefetch(GetBufferDescriptor(b - 1));
    const char *page = BufferBlocks + static_cast<Size>(b - 1) * BLCKSZ;
    __builtin_prefetch(page);
    __builtin_prefetch(PageGetItemId(page, ItemPointerGetOffsetNumber(&pos[i])));
  }
  for (int i = 0; i < n; ++i) {
    if (hints[i] == InvalidBuffer) continue;
    const char *page = BufferBlocks + static_cast<Size>(hints[i] - 1) * BLCKSZ;
    OffsetNumber offnum = ItemPointerGetOffsetNumber(&pos[i]);
    if (offnum < FirstOffsetNumber || offnum > MaxOffsetNumber) continue;
    ItemIdData iid = *PageGetItemId(page, offnum);
    uint32 off = ItemIdGetOffset(&iid), len = ItemIdGetLength(&iid);
    if (off >= BLCKSZ) continue;
    len = Min(len, BLCKSZ - off);
    if (len > skip_tail) len -= skip_tail;
    for (uint32 b = 0; b < len; b += 64) __builtin_prefetch(page + off + b);
  }
}

void read_distances(const GraphQuery *qy, const ItemPointerData *pos, int n, Buffer *bufs,
                    float *dist, bool *deleted, float keep_below, ItemPointerData *lists,
                    uint8 *nlists) {
  // The refinement code (the tuple's tail) is not needed for the graph distance. Then one
  // element at a time: at most one pin is held (more than 8 at once would spill the backend's
  // private pin counts into a hash table).
  prefetch_elements(qy->index, pos, n, qy->dim + sizeof(hnsw::CodeHeader), bufs);
  for (int i = 0; i < n; ++i) {
    Buffer buf = read_buffer_recent(qy->index, ItemPointerGetBlockNumber(&pos[i]));
    LockBuffer(buf, BUFFER_LOCK_SHARE);
    ElementTuple *e = checked_element(qy, buf, const_cast<ItemPointer>(&pos[i]));
    dist[i] = query_distance(qy, e);
    deleted[i] = e->deleted != 0;
    if (lists != nullptr) {
      nlists[i] = kNoList;
      if (dist[i] < keep_below) {
        int cap = hnsw::max_neighbors(qy->m, 0), k = 0;
        ItemPointerData *dst = &lists[static_cast<Size>(cap) * i];
        for (int j = 0; j < cap; ++j)
          if (ItemPointerIsValid(&e->neighbors[j])) dst[k++] = e->neighbors[j];
        nlists[i] = static_cast<uint8>(k);
      }
    }
    UnlockReleaseBuffer(buf);
  }
}

namespace {

// The graph on the index's pages seen by hnsw::search_layer: a TID set of visited elements; the
// neighbours of an element are read together, with prefetching (read_distances). With
// skip_deleted false, deleted elements are returned like the others (the greedy descent moves
// through them). The frames own no C++ objects: a PostgreSQL error may longjmp through them.
struct DiskView {
  using Cand = DiskCand;
  const GraphQuery *qy;
  TidSet *visited;
  bool skip_deleted;
  ItemPointerData *nb;  // scratch, 2m entries each
  Buffer *bufs;
  float *dist;
  bool *del;

  bool first_visit(const DiskCand &c) {
    ItemPointerData pos = c.pos;
    return tidset_add(visited, &pos);
  }
  bool returnable(const DiskCand &c) {
    if (!skip_deleted) return true;
    ItemPointerData pos = c.pos;
    bool deleted;
    read_element(qy, &pos, nullptr, nullptr, &deleted, 0, nullptr, nullptr);
    return !deleted;
  }
  int expand(const DiskCand &c, int layer) {
    CHECK_FOR_INTERRUPTS();
    ItemPointerData pos = c.pos;
    int nnb, nt = 0;
    read_element(qy, &pos, nullptr, nullptr, nullptr, layer, nb, &nnb);
    for (int i = 0; i < nnb; ++i)
      if (tidset_add(visited, &nb[i])) nb[nt++] = nb[i];
    read_distances(qy, nb, nt, bufs, dist, del);
    return nt;
  }
  DiskCand expanded(int i) const { return DiskCand{dist[i], nb[i], kNoSlot}; }
  bool expanded_returnable(int i) const { return !skip_deleted || !del[i]; }
};

DiskView make_view(const GraphQuery *qy, TidSet *visited, bool skip_deleted) {
  int cap = hnsw::max_neighbors(qy->m, 0);
  return DiskView{qy,
                  visited,
                  skip_deleted,
                  static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * cap)),
                  static_cast<Buffer *>(palloc(sizeof(Buffer) * cap)),
                  static_cast<float *>(palloc(sizeof(float) * cap)),
                  static_cast<bool *>(palloc(sizeof(bool) * cap))};
}

void free_view(DiskView *v) {
  pfree(v->nb);
  pfree(v->bufs);
  pfree(v->dist);
  pfree(v->del);
}

}  // namespace

int search_layer(const GraphQuery *qy, const DiskCand *entry, int nentry, int ef, int layer,
                 DiskCand **out) {
  TidSet visited;
  tidset_init(&visited, ef * 8);
  CandHeap cand, best;
  heap_init(&cand, ef * 4, true);
  heap_init(&best, ef + 1, false);
  DiskView view = make_view(qy, &visited, true);
  hnsw::search_layer(view, entry, nentry, ef, layer, cand, best);
  int n = best.n;
  DiskCand *res = static_cast<DiskCand *>(palloc(sizeof(DiskCand) * (n > 0 ? n : 1)));
  for (int i = n - 1; i >= 0; --i) res[i] = heap_pop(&best);
  pfree(cand.a);
  pfree(best.a);
  pfree(visited.keys);
  free_view(&view);
  *out = res;
  return n;
}

bool descend(const GraphQuery *qy, const MetaPage *meta, int to_layer, DiskCand *entry) {
  if (meta->entry_blk == InvalidBlockNumber) return false;
  DiskCand ep;
  ItemPointerSet(&ep.pos, meta->entry_blk, meta->entry_off);
  ep.slot = kNoSlot;
  read_element(qy, &ep.pos, &ep.dist, nullptr, nullptr, 0, nullptr, nullptr);
  if (meta->entry_level > to_layer) {
    TidSet visited;
    tidset_init(&visited, 64);
    CandHeap cand, best;
    heap_init(&cand, 16, true);
    heap_init(&best, 2, false);
    DiskView view = make_view(qy, &visited, false);
    for (int l = meta->entry_level; l > to_layer; --l) {
      tidset_clear(&visited);
      cand.n = 0;
      best.n = 0;
      hnsw::search_layer(view, &ep, 1, 1, l, cand, best);
      ep = best.top();
    }
    pfree(cand.a);
    pfree(best.a);
    pfree(visited.keys);
    free_view(&view);
  }
  *entry = ep;
  return true;
}

}  // namespace lookalike::hnswpg
