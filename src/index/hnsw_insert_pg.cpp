// lookalike_hnsw: inserting rows after the build (aminsert), one element at a time, every page
// change through generic WAL. C-style code over palloc'd memory (see hnsw_pg.hpp).
#include <cstdlib>

#include "index/hnsw_pg.hpp"
#include "vector/embedding_pg.hpp"

extern "C" {
#include "common/pg_prng.h"
}

using namespace lookalike;
using namespace lookalike::hnswpg;

namespace lookalike::hnswpg {

void load_code(Relation index, int m, int dim, ItemPointer pos, int8_t *code, hnsw::CodeHeader *h,
               bool *deleted) {
  Buffer buf = ReadBuffer(index, ItemPointerGetBlockNumber(pos));
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  Page page = BufferGetPage(buf);
  if (PageIsNew(page) || page_opaque(page)->kind != kPageElement ||
      ItemPointerGetOffsetNumber(pos) > PageGetMaxOffsetNumber(page)) {
    UnlockReleaseBuffer(buf);
    ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                    errmsg("lookalike_hnsw index \"%s\" links to a missing element",
                           RelationGetRelationName(index))));
  }
  ElementTuple *e = page_element(page, ItemPointerGetOffsetNumber(pos));
  memcpy(code, element_code(e, m), dim);
  *h = e->code_header;
  if (deleted) *deleted = e->deleted != 0;
  UnlockReleaseBuffer(buf);
}

struct SortItem {
  float dist;
  int idx;
};

static int cmp_sort_item(const void *a, const void *b) {
  float x = static_cast<const SortItem *>(a)->dist, y = static_cast<const SortItem *>(b)->dist;
  return (x > y) - (x < y);
}

// Selects up to cap neighbours for a base point (prepared float vector) among candidate
// elements: loads their codes, computes distances when dists is NULL, skips deleted ones, sorts
// and applies the HNSW heuristic. Returns the count written to out.
int choose_neighbors(Relation index, const MetaPage *meta, const float *base, float base_norm2,
                     const ItemPointerData *cands, const float *dists, int n, int cap, bool fill,
                     ItemPointerData *out) {
  Metric metric = meta_metric(meta);
  int dim = meta->dim, m = meta->m;
  if (n == 0) return 0;
  int8_t *codes = static_cast<int8_t *>(palloc(static_cast<Size>(n) * dim));
  hnsw::CodeHeader *hs = static_cast<hnsw::CodeHeader *>(palloc(sizeof(hnsw::CodeHeader) * n));
  SortItem *items = static_cast<SortItem *>(palloc(sizeof(SortItem) * n));
  int live = 0;
  for (int i = 0; i < n; ++i) {
    bool del;
    ItemPointerData pos = cands[i];
    load_code(index, m, dim, &pos, codes + static_cast<Size>(i) * dim, &hs[i], &del);
    if (del) continue;
    float d = dists ? dists[i]
                    : hnsw::code_distance(metric, base, base_norm2,
                                          codes + static_cast<Size>(i) * dim, hs[i], dim);
    items[live++] = {d, i};
  }
  qsort(items, live, sizeof(SortItem), cmp_sort_item);
  float *sd = static_cast<float *>(palloc(sizeof(float) * (live + 1)));
  const int8_t **cp = static_cast<const int8_t **>(palloc(sizeof(int8_t *) * (live + 1)));
  const hnsw::CodeHeader **hp =
      static_cast<const hnsw::CodeHeader **>(palloc(sizeof(hnsw::CodeHeader *) * (live + 1)));
  for (int i = 0; i < live; ++i) {
    sd[i] = items[i].dist;
    cp[i] = codes + static_cast<Size>(items[i].idx) * dim;
    hp[i] = &hs[items[i].idx];
  }
  int *sel = static_cast<int *>(palloc(sizeof(int) * (live + 1)));
  bool *flags = static_cast<bool *>(palloc(sizeof(bool) * (live + 1)));
  float *scratch = static_cast<float *>(palloc(sizeof(float) * dim));
  int k = hnsw::select_neighbors(metric, dim, sd, cp, hp, live, cap, sel, scratch, flags, fill);
  for (int i = 0; i < k; ++i) out[i] = cands[items[sel[i]].idx];
  pfree(codes);
  pfree(hs);
  pfree(items);
  pfree(sd);
  pfree(cp);
  pfree(hp);
  pfree(sel);
  pfree(flags);
  pfree(scratch);
  return k;
}

// Overwrites the neighbour list of the element at pos on a layer (generic WAL).
void write_neighbors(Relation index, int m, ItemPointer pos, int layer, const ItemPointerData *list,
                     int n) {
  Buffer buf = ReadBuffer(index, ItemPointerGetBlockNumber(pos));
  LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
  GenericXLogState *state = GenericXLogStart(index);
  Page page = GenericXLogRegisterBuffer(state, buf, 0);
  ElementTuple *e = page_element(page, ItemPointerGetOffsetNumber(pos));
  if (layer <= e->level) {
    int cap = hnsw::max_neighbors(m, layer);
    ItemPointerData *dst = &e->neighbors[layer_offset(m, layer)];
    for (int i = 0; i < cap; ++i) {
      if (i < n)
        dst[i] = list[i];
      else
        ItemPointerSetInvalid(&dst[i]);
    }
  }
  GenericXLogFinish(state);
  UnlockReleaseBuffer(buf);
}

void reselect_neighbors(Relation index, const MetaPage *meta, ItemPointer pos, int layer,
                        const int8_t *code, const hnsw::CodeHeader &h, const ItemPointerData *cands,
                        int n, bool fill, ItemPointerData *out) {
  float *base = static_cast<float *>(palloc(sizeof(float) * meta->dim));
  hnsw::dequantize(code, h, meta->dim, base);
  int k = choose_neighbors(index, meta, base, h.norm2, cands, nullptr, n,
                           hnsw::max_neighbors(meta->m, layer), fill, out);
  write_neighbors(index, meta->m, pos, layer, out, k);
  pfree(base);
}

// Reads the neighbour list of pos on a layer (all valid slots) and its code.
static int read_neighbors(Relation index, int m, int dim, ItemPointer pos, int layer,
                          ItemPointerData *list, int8_t *code, hnsw::CodeHeader *h) {
  Buffer buf = ReadBuffer(index, ItemPointerGetBlockNumber(pos));
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  Page page = BufferGetPage(buf);
  ElementTuple *e = page_element(page, ItemPointerGetOffsetNumber(pos));
  int n = 0;
  if (layer <= e->level) {
    int cap = hnsw::max_neighbors(m, layer);
    ItemPointerData *src = &e->neighbors[layer_offset(m, layer)];
    for (int i = 0; i < cap; ++i)
      if (ItemPointerIsValid(&src[i])) list[n++] = src[i];
  }
  if (code) memcpy(code, element_code(e, m), dim);
  if (h) *h = e->code_header;
  UnlockReleaseBuffer(buf);
  return n;
}

// Adds the link nb -> newpos on a layer; when nb's list is full, re-selects among its current
// neighbours and the new element with the heuristic.
static void link_back(Relation index, const MetaPage *meta, ItemPointer nb, int layer,
                      ItemPointer newpos) {
  int m = meta->m, dim = meta->dim;
  int cap = hnsw::max_neighbors(m, layer);
  ItemPointerData *list =
      static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * (cap + 1)));
  int8_t *code = static_cast<int8_t *>(palloc(dim));
  hnsw::CodeHeader h;
  int n = read_neighbors(index, m, dim, nb, layer, list, code, &h);
  for (int i = 0; i < n; ++i)
    if (ItemPointerEquals(&list[i], newpos)) return;
  if (n < cap) {
    list[n++] = *newpos;
    write_neighbors(index, m, nb, layer, list, n);
  } else {
    list[n++] = *newpos;
    ItemPointerData *out = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * cap));
    reselect_neighbors(index, meta, nb, layer, code, h, list, n, false, out);
    pfree(out);
  }
  pfree(list);
  pfree(code);
}

// Adds the element tuple to `page` (registered in `state`, `buf` locked exclusively), WAL-logs
// the change, releases the buffer and returns the tuple's position in `out`.
static void add_element_and_finish(Relation index, GenericXLogState *state, Page page, Buffer buf,
                                   BlockNumber blk, ElementTuple *tup, Size size, ItemPointer out) {
  OffsetNumber off =
      PageAddItem(page, reinterpret_cast<Item>(tup), size, InvalidOffsetNumber, false, false);
  if (off == InvalidOffsetNumber) {
    GenericXLogAbort(state);
    UnlockReleaseBuffer(buf);
    elog(ERROR, "failed to add an element to lookalike_hnsw index \"%s\"",
         RelationGetRelationName(index));
  }
  GenericXLogFinish(state);
  UnlockReleaseBuffer(buf);
  ItemPointerSet(out, blk, off);
}

// Puts a new element tuple on a page with room (the last page, else a new one).
static void place_element(Relation index, const MetaPage *meta, ElementTuple *tup, Size size,
                          ItemPointer out) {
  BlockNumber blk = meta->insert_blk;
  if (blk != InvalidBlockNumber && blk != kMetaBlock && blk < RelationGetNumberOfBlocks(index)) {
    Buffer buf = ReadBuffer(index, blk);
    LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
    if (PageGetFreeSpace(BufferGetPage(buf)) >= MAXALIGN(size)) {
      GenericXLogState *state = GenericXLogStart(index);
      Page page = GenericXLogRegisterBuffer(state, buf, 0);
      add_element_and_finish(index, state, page, buf, blk, tup, size, out);
      return;
    }
    UnlockReleaseBuffer(buf);
  }
  LockRelationForExtension(index, ExclusiveLock);
  Buffer buf = ReadBuffer(index, P_NEW);
  LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
  UnlockRelationForExtension(index, ExclusiveLock);
  blk = BufferGetBlockNumber(buf);
  GenericXLogState *state = GenericXLogStart(index);
  Page page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
  init_page(page, kPageElement);
  add_element_and_finish(index, state, page, buf, blk, tup, size, out);
  update_meta(index, false, nullptr, 0, blk);
}

void insert_element(Relation index, const MetaPage *meta, const float *x, ItemPointer heaptid) {
  int m = meta->m, dim = meta->dim;
  Metric metric = meta_metric(meta);
  int level = hnsw::random_level(1.0 - pg_prng_double(&pg_global_prng_state), m);
  Size size = element_size(dim, m, level);
  ElementTuple *tup = static_cast<ElementTuple *>(palloc0(size));
  tup->level = static_cast<uint8>(level);
  tup->dim = static_cast<uint16>(dim);
  tup->heaptid = *heaptid;
  for (int i = 0; i < neighbor_slots(m, level); ++i) ItemPointerSetInvalid(&tup->neighbors[i]);
  hnsw::quantize(x, dim, element_code(tup, m), &tup->code_header);
  hnsw::CodeHeader h2;
  hnsw::quantize_residual(x, dim, element_code(tup, m), tup->code_header, element_code2(tup, m),
                          &h2);
  element_set_header2(tup, m, h2);

  GraphQuery qy{index, metric, dim, m, x, 0.0f};
  for (int i = 0; i < dim; ++i) qy.qnorm2 += x[i] * x[i];

  DiskCand ep;
  bool have_entry = descend(&qy, meta, level, &ep);
  // The neighbour lists of the new element, per layer.
  int top = have_entry ? Min(level, meta->entry_level) : -1;
  ItemPointerData **chosen = static_cast<ItemPointerData **>(palloc0(sizeof(void *) * (level + 1)));
  int *nchosen = static_cast<int *>(palloc0(sizeof(int) * (level + 1)));
  DiskCand *entries = static_cast<DiskCand *>(palloc(sizeof(DiskCand)));
  entries[0] = ep;
  int nentries = 1;
  for (int l = top; l >= 0; --l) {
    DiskCand *w;
    int nw = search_layer(&qy, entries, nentries, meta->ef_construction, l, &w);
    int cap = hnsw::max_neighbors(m, l);
    ItemPointerData *cp =
        static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * (nw + 1)));
    float *cd = static_cast<float *>(palloc(sizeof(float) * (nw + 1)));
    for (int i = 0; i < nw; ++i) {
      cp[i] = w[i].pos;
      cd[i] = w[i].dist;
    }
    chosen[l] = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * cap));
    nchosen[l] = choose_neighbors(index, meta, x, qy.qnorm2, cp, cd, nw, cap, false, chosen[l]);
    ItemPointerData *dst = &tup->neighbors[layer_offset(m, l)];
    for (int i = 0; i < nchosen[l]; ++i) dst[i] = chosen[l][i];
    if (nw > 0) {
      entries = w;
      nentries = nw;
    }
  }

  ItemPointerData newpos;
  place_element(index, meta, tup, size, &newpos);
  for (int l = top; l >= 0; --l)
    for (int i = 0; i < nchosen[l]; ++i) link_back(index, meta, &chosen[l][i], l, &newpos);
  if (!have_entry || level > meta->entry_level)
    update_meta(index, true, &newpos, level, InvalidBlockNumber);
}

}  // namespace lookalike::hnswpg

// ---- aminsert ------------------------------------------------------------------------------

extern "C" bool lookalike_hnsw_insert(Relation index, Datum *values, bool *isnull,
                                      ItemPointer heap_tid, Relation, IndexUniqueCheck, bool,
                                      IndexInfo *) {
  if (isnull[0]) return false;  // NULLs are not indexed
  MemoryContext cxt =
      AllocSetContextCreate(CurrentMemoryContext, "lookalike_hnsw insert", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(cxt);
  Embedding *e = datum_get_embedding(values[0]);
  LockPage(index, kUpdateLock, ExclusiveLock);
  MetaPage meta;
  read_meta(index, &meta);
  if (meta.dim == 0) {
    // Built over no row on a column without typmod: the first row fixes the dimension.
    if (element_size(e->dim, meta.m, hnsw::kMaxLevel) > max_element_size())
      ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                      errmsg("embeddings of %d dimensions are too large for lookalike_hnsw index "
                             "\"%s\" with m = %d",
                             e->dim, RelationGetRelationName(index), meta.m)));
    Buffer buf = ReadBuffer(index, kMetaBlock);
    LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
    GenericXLogState *state = GenericXLogStart(index);
    page_meta(GenericXLogRegisterBuffer(state, buf, 0))->dim = e->dim;
    GenericXLogFinish(state);
    UnlockReleaseBuffer(buf);
    meta.dim = e->dim;
  }
  if (static_cast<int>(e->dim) != static_cast<int>(meta.dim))
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("expected %u dimensions, not %d", meta.dim, e->dim),
                    errdetail("The lookalike_hnsw index \"%s\" holds %u-dimensional embeddings.",
                              RelationGetRelationName(index), meta.dim)));
  float *x = static_cast<float *>(palloc(sizeof(float) * meta.dim));
  if (prepare_vector(meta_metric(&meta), e->x, meta.dim, x))
    insert_element(index, &meta, x, heap_tid);
  UnlockPage(index, kUpdateLock, ExclusiveLock);
  MemoryContextSwitchTo(old);
  MemoryContextDelete(cxt);
  return false;
}
