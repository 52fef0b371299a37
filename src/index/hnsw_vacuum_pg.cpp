// lookalike_hnsw: VACUUM. Three passes over the element pages:
//  1. find the elements whose heap row is dead (the callback), and the live element of highest
//     level (the new entry point if the current one dies);
//  2. under the update lock (no insert runs meanwhile): repair every live element that links to
//     a dead one -- the candidates are its live neighbours plus the live neighbours of its dead
//     neighbours, re-selected with the HNSW heuristic -- and move the entry point if it is dead;
//  3. mark the dead elements deleted and clear their heap TID, so no scan returns them again.
// Deleted elements keep their place on the page (no space reuse; REINDEX compacts). Every page
// change through generic WAL. C-style code over palloc'd memory.
#include "index/hnsw_pg.hpp"

extern "C" {
#include "commands/vacuum.h"
}

using namespace lookalike;
using namespace lookalike::hnswpg;

namespace {

// Neighbour list (valid slots) of pos on a layer, its code and header.
int read_list(Relation index, const MetaPage *meta, ItemPointer pos, int layer,
              ItemPointerData *list, int8_t *code, hnsw::CodeHeader *h) {
  Buffer buf = ReadBuffer(index, ItemPointerGetBlockNumber(pos));
  LockBuffer(buf, BUFFER_LOCK_SHARE);
  ElementTuple *e = page_element(BufferGetPage(buf), ItemPointerGetOffsetNumber(pos));
  int n = 0;
  if (layer <= e->level) {
    int cap = hnsw::max_neighbors(meta->m, layer);
    ItemPointerData *src = &e->neighbors[layer_offset(meta->m, layer)];
    for (int i = 0; i < cap; ++i)
      if (ItemPointerIsValid(&src[i])) list[n++] = src[i];
  }
  if (code) memcpy(code, element_code(e, meta->m), meta->dim);
  if (h) *h = e->code_header;
  UnlockReleaseBuffer(buf);
  return n;
}

void repair(Relation index, const MetaPage *meta, const TidSet *dead, ItemPointer pos, int layer) {
  int m = meta->m, dim = meta->dim;
  int cap = hnsw::max_neighbors(m, layer);
  ItemPointerData *list = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * cap));
  ItemPointerData *sub = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * cap));
  int8_t *code = static_cast<int8_t *>(palloc(dim));
  hnsw::CodeHeader h;
  int n = read_list(index, meta, pos, layer, list, code, &h);
  int maxc = cap + cap * cap;
  ItemPointerData *cands = static_cast<ItemPointerData *>(palloc(sizeof(ItemPointerData) * maxc));
  int nc = 0;
  TidSet seen;
  tidset_init(&seen, maxc);
  tidset_add(&seen, pos);
  for (int i = 0; i < n; ++i) {
    if (!tidset_contains(dead, &list[i])) {
      if (tidset_add(&seen, &list[i])) cands[nc++] = list[i];
      continue;
    }
    int ns = read_list(index, meta, &list[i], layer, sub, nullptr, nullptr);
    for (int j = 0; j < ns; ++j)
      if (!tidset_contains(dead, &sub[j]) && tidset_add(&seen, &sub[j])) cands[nc++] = sub[j];
  }
  // With fill: the repaired list is kept full, making up for the links the dead took away.
  reselect_neighbors(index, meta, pos, layer, code, h, cands, nc, true, list);
  pfree(list);
  pfree(sub);
  pfree(code);
  pfree(cands);
  pfree(seen.keys);
}

// Reads block blk of the index for VACUUM (after vacuum_delay_point, with the VACUUM's buffer
// strategy) and locks it in mode; *maxoff is its last element's offset (0 for a new page).
Page lock_page(IndexVacuumInfo *info, BlockNumber blk, int mode, Buffer *buf,
               OffsetNumber *maxoff) {
  vacuum_delay_point();
  *buf = ReadBufferExtended(info->index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);
  LockBuffer(*buf, mode);
  Page page = BufferGetPage(*buf);
  *maxoff = PageIsNew(page) ? 0 : PageGetMaxOffsetNumber(page);
  return page;
}

// What pass 1 found.
struct DeadElements {
  TidSet dead;               // positions of the elements whose heap row is dead
  double live;               // elements alive
  ItemPointerData best_pos;  // the live element of highest level (invalid: none)
  int best_level;
};

// Pass 1: the elements whose heap row is dead (the callback), the live ones counted.
void find_dead(IndexVacuumInfo *info, IndexBulkDeleteCallback callback, void *callback_state,
               BlockNumber nblocks, DeadElements *out) {
  tidset_init(&out->dead, 1024);
  out->live = 0;
  ItemPointerSetInvalid(&out->best_pos);
  out->best_level = -1;
  for (BlockNumber blk = 1; blk < nblocks; ++blk) {
    Buffer buf;
    OffsetNumber maxoff;
    Page page = lock_page(info, blk, BUFFER_LOCK_SHARE, &buf, &maxoff);
    for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; ++off) {
      ElementTuple *e = page_element(page, off);
      if (e->deleted) continue;
      ItemPointerData pos;
      ItemPointerSet(&pos, blk, off);
      if (callback(&e->heaptid, callback_state)) {
        tidset_add(&out->dead, &pos);
      } else {
        out->live += 1;
        if (e->level > out->best_level) {
          out->best_level = e->level;
          out->best_pos = pos;
        }
      }
    }
    UnlockReleaseBuffer(buf);
  }
}

// A new entry point if the current one dies: the live element of highest level found by pass 1
// (none: the graph is empty). The caller holds the update lock; meta is current.
void replace_dead_entry(Relation index, const MetaPage *meta, DeadElements *d) {
  ItemPointerData entry;
  ItemPointerSet(&entry, meta->entry_blk, meta->entry_off);
  if (meta->entry_blk == InvalidBlockNumber || !tidset_contains(&d->dead, &entry)) return;
  if (d->best_level >= 0)
    update_meta(index, true, &d->best_pos, d->best_level, InvalidBlockNumber);
  else
    update_meta(index, true, nullptr, -1, InvalidBlockNumber);
}

// Pass 2: repair every live element's links to dead ones, page by page (the layers of the
// page's elements that need it are listed under the page's lock, then repaired one by one).
void repair_links(IndexVacuumInfo *info, const MetaPage *meta, const TidSet *dead,
                  BlockNumber nblocks) {
  int maxper = MaxOffsetNumber * (hnsw::kMaxLevel + 1);
  OffsetNumber *todo_off = static_cast<OffsetNumber *>(palloc(sizeof(OffsetNumber) * maxper));
  int *todo_layer = static_cast<int *>(palloc(sizeof(int) * maxper));
  for (BlockNumber blk = 1; blk < nblocks; ++blk) {
    int ntodo = 0;
    Buffer buf;
    OffsetNumber maxoff;
    Page page = lock_page(info, blk, BUFFER_LOCK_SHARE, &buf, &maxoff);
    for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; ++off) {
      ElementTuple *e = page_element(page, off);
      ItemPointerData pos;
      ItemPointerSet(&pos, blk, off);
      if (e->deleted || tidset_contains(dead, &pos)) continue;
      for (int l = 0; l <= e->level; ++l) {
        ItemPointerData *src = &e->neighbors[layer_offset(meta->m, l)];
        int cap = hnsw::max_neighbors(meta->m, l);
        for (int i = 0; i < cap; ++i)
          if (ItemPointerIsValid(&src[i]) && tidset_contains(dead, &src[i])) {
            todo_off[ntodo] = off;
            todo_layer[ntodo++] = l;
            break;
          }
      }
    }
    UnlockReleaseBuffer(buf);
    for (int i = 0; i < ntodo; ++i) {
      ItemPointerData pos;
      ItemPointerSet(&pos, blk, todo_off[i]);
      repair(info->index, meta, dead, &pos, todo_layer[i]);
    }
  }
  pfree(todo_off);
  pfree(todo_layer);
}

// Pass 3: mark the dead elements deleted and clear their heap TIDs (one WAL record per page
// that has any).
void mark_deleted(IndexVacuumInfo *info, const TidSet *dead, BlockNumber nblocks) {
  for (BlockNumber blk = 1; blk < nblocks; ++blk) {
    Buffer buf;
    OffsetNumber maxoff;
    Page page = lock_page(info, blk, BUFFER_LOCK_EXCLUSIVE, &buf, &maxoff);
    bool any = false;
    for (OffsetNumber off = FirstOffsetNumber; off <= maxoff && !any; ++off) {
      ItemPointerData pos;
      ItemPointerSet(&pos, blk, off);
      any = !page_element(page, off)->deleted && tidset_contains(dead, &pos);
    }
    if (any) {
      GenericXLogState *state = GenericXLogStart(info->index);
      Page p = GenericXLogRegisterBuffer(state, buf, 0);
      for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; ++off) {
        ItemPointerData pos;
        ItemPointerSet(&pos, blk, off);
        if (tidset_contains(dead, &pos)) {
          ElementTuple *e = page_element(p, off);
          e->deleted = 1;
          ItemPointerSetInvalid(&e->heaptid);
        }
      }
      GenericXLogFinish(state);
    }
    UnlockReleaseBuffer(buf);
  }
}

}  // namespace

extern "C" IndexBulkDeleteResult *lookalike_hnsw_bulkdelete(IndexVacuumInfo *info,
                                                            IndexBulkDeleteResult *stats,
                                                            IndexBulkDeleteCallback callback,
                                                            void *callback_state) {
  Relation index = info->index;
  if (stats == nullptr)
    stats = static_cast<IndexBulkDeleteResult *>(palloc0(sizeof(IndexBulkDeleteResult)));
  MemoryContext cxt =
      AllocSetContextCreate(CurrentMemoryContext, "lookalike_hnsw vacuum", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(cxt);
  MetaPage meta;
  read_meta(index, &meta);
  BlockNumber nblocks = RelationGetNumberOfBlocks(index);
  DeadElements d;
  find_dead(info, callback, callback_state, nblocks, &d);
  stats->num_pages = nblocks;
  if (d.dead.count > 0) {
    LockPage(index, kUpdateLock, ExclusiveLock);
    read_meta(index, &meta);
    replace_dead_entry(index, &meta, &d);
    nblocks = RelationGetNumberOfBlocks(index);  // pages added since pass 1 included
    repair_links(info, &meta, &d.dead, nblocks);
    mark_deleted(info, &d.dead, nblocks);
    UnlockPage(index, kUpdateLock, ExclusiveLock);
    stats->tuples_removed += d.dead.count;
    stats->num_pages = nblocks;
  }
  stats->num_index_tuples = d.live;
  MemoryContextSwitchTo(old);
  MemoryContextDelete(cxt);
  return stats;
}

extern "C" IndexBulkDeleteResult *lookalike_hnsw_vacuumcleanup(IndexVacuumInfo *info,
                                                               IndexBulkDeleteResult *stats) {
  if (info->analyze_only) return stats;
  if (stats == nullptr) {
    stats = static_cast<IndexBulkDeleteResult *>(palloc0(sizeof(IndexBulkDeleteResult)));
    stats->num_index_tuples = info->num_heap_tuples;
    stats->estimated_count = info->estimated_count;
  }
  stats->num_pages = RelationGetNumberOfBlocks(info->index);
  return stats;
}
