// The lookalike_hnsw index access method: on-disk layout and the functions its phases share.
//
// Pages: block 0 is the metapage; every other page holds element tuples. One element tuple per
// indexed row: a header, the int8 code of the vector (the graph is traversed over codes; the
// executor re-ranks candidates with the exact distance from the heap row), and the neighbour
// lists of every layer the element is on (2m slots on layer 0, m above; free slots hold an
// invalid item pointer). Every page change after the build goes through generic WAL; the build
// writes its pages and then WAL-logs them whole (log_newpage_range).
//
// Concurrency: inserts and VACUUM's graph repair serialise on a heavyweight page lock
// (kUpdateLock, a lock tag only: no such page exists); scans take none and read one page at a
// time under a shared buffer lock. An insert writes its element before linking to it, so a scan
// never follows a link to a tuple that does not exist yet.
//
// C-style code over palloc'd memory (see docs/architecture.md): these frames own no C++ objects,
// so PostgreSQL errors may longjmp through them. C++ exceptions can only come from the pure core
// (hnsw_codec.hpp, hnsw_graph.hpp), which is called inside pg::run_at_boundary (guard_pg.hpp).
#pragma once

#include "index/hnsw_graph.hpp"
#include "common/guard_pg.hpp"

extern "C" {
#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/reloptions.h"
#include "access/relscan.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/rel.h"
}

namespace lookalike::hnswpg {

inline constexpr uint32 kMagic = 0x4c4b4857;  // "LKHW"
inline constexpr uint32 kIndexVersion = 2;    // 2: refinement code after the code
inline constexpr BlockNumber kMetaBlock = 0;
inline constexpr BlockNumber kUpdateLock = 0;  // heavyweight lock tag
inline constexpr uint16 kPageId = 0xFA11;
inline constexpr uint16 kPageMeta = 1;
inline constexpr uint16 kPageElement = 2;

inline constexpr int kDefaultM = 16;
inline constexpr int kMinM = 2;
inline constexpr int kMaxM = 100;
inline constexpr int kDefaultEfConstruction = 64;
inline constexpr int kMinEfConstruction = 4;
inline constexpr int kMaxEfConstruction = 1000;

// Build sub-phases reported in pg_stat_progress_create_index.
inline constexpr int64 kPhaseLoad = 2;    // scanning the table, building the graph in memory
inline constexpr int64 kPhaseWrite = 3;   // writing the graph to pages
inline constexpr int64 kPhaseRefine = 4;  // second pass over the graph in memory

struct PageOpaque {
  uint16 kind;
  uint16 page_id;
};

struct MetaPage {
  uint32 magic;
  uint32 version;
  uint32 dim;
  uint16 m;
  uint16 ef_construction;
  uint8 metric;  // the integer value of Metric (vector/metric.hpp)
  uint8 unused[3];
  BlockNumber entry_blk;  // InvalidBlockNumber: empty graph
  OffsetNumber entry_off;
  int16 entry_level;
  BlockNumber insert_blk;  // last element page (where inserts try first)
};

struct ElementTuple {
  uint8 level;
  uint8 deleted;  // set by VACUUM: the row is gone; the element is no longer linked to
  uint16 dim;
  ItemPointerData heaptid;
  uint16 unused;
  hnsw::CodeHeader code_header;
  ItemPointerData neighbors[FLEXIBLE_ARRAY_MEMBER];
  // then int8 code[dim], the refinement's CodeHeader (unaligned: memcpy) and int8 code2[dim]
};

inline Metric meta_metric(const MetaPage *meta) { return static_cast<Metric>(meta->metric); }
inline int neighbor_slots(int m, int level) { return 2 * m + level * m; }
inline int layer_offset(int m, int layer) { return layer == 0 ? 0 : 2 * m + (layer - 1) * m; }
inline Size element_size(int dim, int m, int level) {
  return offsetof(ElementTuple, neighbors) + sizeof(ItemPointerData) * neighbor_slots(m, level) +
         2 * dim + sizeof(hnsw::CodeHeader);
}
inline int8_t *element_code(ElementTuple *e, int m) {
  return reinterpret_cast<int8_t *>(&e->neighbors[neighbor_slots(m, e->level)]);
}
inline void element_get_header2(ElementTuple *e, int m, hnsw::CodeHeader *h2) {
  memcpy(h2, element_code(e, m) + e->dim, sizeof(hnsw::CodeHeader));
}
inline void element_set_header2(ElementTuple *e, int m, const hnsw::CodeHeader &h2) {
  memcpy(element_code(e, m) + e->dim, &h2, sizeof(hnsw::CodeHeader));
}
inline int8_t *element_code2(ElementTuple *e, int m) {
  return element_code(e, m) + e->dim + sizeof(hnsw::CodeHeader);
}
inline PageOpaque *page_opaque(Page p) {
  return reinterpret_cast<PageOpaque *>(PageGetSpecialPointer(p));
}
inline MetaPage *page_meta(Page p) { return reinterpret_cast<MetaPage *>(PageGetContents(p)); }
inline ElementTuple *page_element(Page p, OffsetNumber off) {
  return reinterpret_cast<ElementTuple *>(PageGetItem(p, PageGetItemId(p, off)));
}
// Largest element tuple that fits on a page.
inline Size max_element_size() {
  return BLCKSZ - MAXALIGN(SizeOfPageHeaderData + sizeof(ItemIdData)) -
         MAXALIGN(sizeof(PageOpaque));
}

struct Options {
  int32 vl_len_;
  int m;
  int ef_construction;
};

// ---- the access method's entry (hnsw_pg.cpp) ---------------------------------------------------
// Settings: lookalike.ef_search, lookalike.max_scan_tuples, lookalike.build_threads.
inline constexpr int kDefaultEfSearch = 40;
inline constexpr int kMaxEfSearch = 1000;
inline constexpr int kDefaultMaxScanTuples = 20000;
inline constexpr int kMaxBuildThreads = 64;
extern int ef_search;
extern int max_scan_tuples;
extern int build_threads;  // 0 (the default): 1 + max_parallel_maintenance_workers
// Defines the index options (reloptions) and the settings above; called once, from _PG_init.
void define_settings();
int option_m(Relation index);
int option_ef_construction(Relation index);
Metric index_metric(Relation index);

// ---- pages and the on-disk search (hnsw_utils_pg.cpp) -------------------------------------
void init_page(Page page, uint16 kind);
// Copies the metapage (raises XX001 if it is not a lookalike_hnsw metapage).
void read_meta(Relation index, MetaPage *out);
// Updates entry point and/or insert block of the metapage (generic WAL). Passing
// InvalidBlockNumber as insert_blk leaves it unchanged; set_entry false leaves the entry.
void update_meta(Relation index, bool set_entry, ItemPointer entry, int entry_level,
                 BlockNumber insert_blk);
// Prepares a query/row vector for the metric: copies to out (dim floats) and, for cosine,
// normalises. Returns false for a cosine zero vector (not indexed / no direction).
bool prepare_vector(Metric metric, const float *x, int dim, float *out);

// A set of item pointers (open addressing over palloc'd memory).
struct TidSet {
  uint64 *keys;
  uint32 cap;
  uint32 count;
};
void tidset_init(TidSet *s, uint32 cap);
void tidset_clear(TidSet *s);
bool tidset_add(TidSet *s, ItemPointer tid);  // true if newly added
bool tidset_contains(const TidSet *s, ItemPointer tid);

// A search candidate on disk.
struct DiskCand {
  float dist;
  ItemPointerData pos;  // element position in the index
  uint32 slot;          // the scan's copy of its layer-0 neighbour list (kNoSlot: none)
};
inline constexpr uint32 kNoSlot = UINT32_MAX;
// A binary heap of DiskCand over palloc'd memory; min-heap if is_min, else max-heap. The
// member functions are the heap interface of hnsw::search_layer.
struct CandHeap {
  DiskCand *a;
  int n;
  int cap;
  bool is_min;
  inline void push(const DiskCand &c);
  inline void pop();
  const DiskCand &top() const { return a[0]; }
  int size() const { return n; }
};
void heap_init(CandHeap *h, int cap, bool is_min);
void heap_push(CandHeap *h, DiskCand c);
DiskCand heap_pop(CandHeap *h);
inline const DiskCand &heap_top(const CandHeap *h) { return h->a[0]; }
inline void CandHeap::push(const DiskCand &c) { heap_push(this, c); }
inline void CandHeap::pop() { heap_pop(this); }
// An array of DiskCand over palloc'd memory, in no particular order.
struct CandArray {
  DiskCand *a;
  int n;
  int cap;
};

// A query against the on-disk graph.
struct GraphQuery {
  Relation index;
  Metric metric;
  int dim;
  int m;
  const float *q;  // prepared (unit length for cosine)
  float qnorm2;
  // When set, the query's own int8 code (hnsw::quantize): graph distances are then int8 x int8
  // (VNNI), as in the build, instead of float x int8. Only estimates for the traversal; the
  // lower bounds of results always use the float query.
  const int8_t *qcode;
  hnsw::CodeHeader qh;
};
// Reads the element at pos: graph distance to the query, its level and deleted flag, and
// (if nb != NULL) its neighbour list on `layer` (up to the layer's capacity; invalid slots
// skipped). Returns false if pos holds no element (which would be corruption: raises XX001).
void read_element(const GraphQuery *qy, ItemPointer pos, float *dist, int *level, bool *deleted,
                  int layer, ItemPointerData *nb, int *nnb);
// ReadBuffer through a backend-local memory of the buffer that held each block last
// (ReadRecentBuffer skips the shared buffer table lookup when the buffer still holds it).
Buffer read_buffer_recent(Relation index, BlockNumber blk);
// Prefetches what reading the n elements at pos will touch (buffer descriptors, page headers,
// line pointers, the tuples except their last skip_tail bytes), for the blocks whose buffer is
// remembered, without pinning anything. hints: scratch for n buffers.
void prefetch_elements(Relation index, const ItemPointerData *pos, int n, uint32 skip_tail,
                       Buffer *hints);
// The graph distances and deleted flags of n elements (the neighbours of one element), reading
// their pages with prefetching. bufs: scratch for n buffers. Raises XX001 like read_element.
// When lists is not NULL, the layer-0 neighbour list of each element nearer than keep_below is
// copied to lists[2m * i ...] with its length in nlists[i] (kNoList for the others), so that
// expanding it later needs no second visit of its page.
inline constexpr uint8 kNoList = 0xFF;
void read_distances(const GraphQuery *qy, const ItemPointerData *pos, int n, Buffer *bufs,
                    float *dist, bool *deleted, float keep_below = 0,
                    ItemPointerData *lists = nullptr, uint8 *nlists = nullptr);
// hnsw::search_layer over the pages from the entry candidates; returns up to ef nearest (nearest
// first) in *out. Deleted elements are traversed but not returned.
int search_layer(const GraphQuery *qy, const DiskCand *entry, int nentry, int ef, int layer,
                 DiskCand **out);
// Greedy descent from the metapage entry point to `to_layer` + 1 (hnsw::search_layer with
// ef = 1 on each layer above, through deleted elements as well), then returns the entry
// candidate for to_layer. Returns false for an empty graph.
bool descend(const GraphQuery *qy, const MetaPage *meta, int to_layer, DiskCand *entry);

// ---- insert (hnsw_insert_pg.cpp) -----------------------------------------------------------
// Inserts one prepared vector (generic WAL). The caller holds kUpdateLock exclusively.
void insert_element(Relation index, const MetaPage *meta, const float *x, ItemPointer heaptid);
// Selects up to cap neighbours of a base point among cands[0..n) (distances computed when dists
// is NULL; deleted elements skipped) with the HNSW heuristic; returns the count written to out.
// fill: the nearest pruned candidates fill the list up to cap (VACUUM's repair); inserts do not
// fill, like the build (hnsw::Graph).
int choose_neighbors(Relation index, const MetaPage *meta, const float *base, float base_norm2,
                     const ItemPointerData *cands, const float *dists, int n, int cap, bool fill,
                     ItemPointerData *out);
// Replaces pos's neighbour list on a layer (generic WAL).
void write_neighbors(Relation index, int m, ItemPointer pos, int layer, const ItemPointerData *list,
                     int n);
// Re-selects pos's neighbours on a layer from cands[0..n) (pos's code and header given) and
// writes them: used when a full list gains a member (insert) and when it lost dead ones (vacuum).
void reselect_neighbors(Relation index, const MetaPage *meta, ItemPointer pos, int layer,
                        const int8_t *code, const hnsw::CodeHeader &h, const ItemPointerData *cands,
                        int n, bool fill, ItemPointerData *out);

}  // namespace lookalike::hnswpg

extern "C" {
// AM callbacks.
IndexBuildResult *lookalike_hnsw_build(Relation heap, Relation index, IndexInfo *info);
void lookalike_hnsw_buildempty(Relation index);
bool lookalike_hnsw_insert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
                           Relation heap, IndexUniqueCheck check_unique, bool index_unchanged,
                           IndexInfo *info);
IndexBulkDeleteResult *lookalike_hnsw_bulkdelete(IndexVacuumInfo *info,
                                                 IndexBulkDeleteResult *stats,
                                                 IndexBulkDeleteCallback callback,
                                                 void *callback_state);
IndexBulkDeleteResult *lookalike_hnsw_vacuumcleanup(IndexVacuumInfo *info,
                                                    IndexBulkDeleteResult *stats);
IndexScanDesc lookalike_hnsw_beginscan(Relation index, int nkeys, int norderbys);
void lookalike_hnsw_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
                           int norderbys);
bool lookalike_hnsw_gettuple(IndexScanDesc scan, ScanDirection dir);
void lookalike_hnsw_endscan(IndexScanDesc scan);
}
