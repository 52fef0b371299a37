// The HNSW graph logic of the lookalike_hnsw index (pure C++): level generation, the
// neighbour-selection heuristic, the search of one layer (generic over the graph: in memory or
// on the index's pages), and an in-memory graph over int8 codes used by the index build (and by
// the unit tests to check the algorithm without a server).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "index/hnsw_codec.hpp"

namespace lookalike::hnsw {

inline constexpr int kMaxLevel = 15;  // levels 0..15; more would need 2^60 elements at m=2

// Level of a new element from a uniform u in (0, 1]: floor(-ln(u) / ln(m)), at most kMaxLevel.
int random_level(double u, int m);

// Largest number of neighbours an element keeps on a layer (2m on layer 0, m above).
inline int max_neighbors(int m, int layer) { return layer == 0 ? 2 * m : m; }

// The HNSW neighbour-selection heuristic ("select neighbors heuristic" of Malkov & Yashunin):
// candidates are given nearest first (dist[i] = graph distance to the base point); candidate i is
// kept when it is nearer to the base than to every candidate kept before it, so the kept edges
// point in diverse directions. With fill, the nearest discarded ones fill up the list when fewer
// than max_sel are kept. Writes the indices of the kept
// candidates to out, returns how many. scratch: dim floats. Never throws, never allocates.
int select_neighbors(Metric metric, int dim, const float *dist, const int8_t *const *codes,
                     const CodeHeader *const *hdrs, int n, int max_sel, int *out, float *scratch,
                     bool *kept_flags, bool fill);

// A search result: graph distance and node id.
struct Candidate {
  float dist;
  uint32_t id;
};

// The best-first search of one layer (SEARCH-LAYER of Malkov & Yashunin), written once for the
// in-memory graph (Graph: the build) and the graph on the index's pages (insert, VACUUM's
// repair, and the descent of an index scan). It is generic over a graph view, as usearch's
// index_gt is over its storage:
//
//   struct View {
//     using Cand = ...;                      // a candidate with a `float dist` (graph distance)
//     bool first_visit(const Cand &c);       // marks c visited; false when it already was
//     bool returnable(const Cand &c);        // false: traversed but never in the result (deleted)
//     int expand(const Cand &c, int layer);  // measures c's neighbours on `layer` that were not
//                                            // visited yet (marking them): returns how many
//     Cand expanded(int i);                  // the i-th of them, with its distance
//     bool expanded_returnable(int i);
//   };
//
// and over the two heaps (push, pop, top, size): `cand` with the nearest on top, `best` with the
// farthest on top, both empty on entry. Each side keeps its own memory (the in-memory graph
// std::vectors, the on-disk side palloc'd arrays that a PostgreSQL error may abandon): this
// routine owns nothing. On return `best` holds the up to ef nearest returnable candidates found.
template <typename View, typename NearHeap, typename FarHeap>
void search_layer(View &g, const typename View::Cand *entry, int nentry, int ef, int layer,
                  NearHeap &cand, FarHeap &best) {
  for (int i = 0; i < nentry; ++i) {
    if (!g.first_visit(entry[i])) continue;
    cand.push(entry[i]);
    if (g.returnable(entry[i])) best.push(entry[i]);
  }
  while (best.size() > ef) best.pop();
  while (cand.size() > 0) {
    const typename View::Cand c = cand.top();
    if (best.size() >= ef && c.dist > best.top().dist) break;
    cand.pop();
    const int n = g.expand(c, layer);
    for (int i = 0; i < n; ++i) {
      const typename View::Cand e = g.expanded(i);
      if (best.size() < ef || e.dist < best.top().dist) {
        cand.push(e);
        if (g.expanded_returnable(i)) {
          best.push(e);
          if (best.size() > ef) best.pop();
        }
      }
    }
  }
}

// An HNSW graph in memory over int8 codes. Used by the index build (then written to pages) and by
// the unit tests. Elements are appended (quantised, not yet reachable), then linked into the
// graph, by one thread or several (link_pending). Apart from link_pending's own threads, a Graph
// is not thread-safe. Throws std::bad_alloc when out of memory.
class Graph {
 public:
  Graph(int dim, Metric metric, int m, int ef_construction);
  ~Graph();
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;

  // Adds x (already unit length for cosine) at the given level and links it; returns its id
  // (0, 1, 2, ...). The same as append + link_pending(1, nullptr).
  uint32_t add(const float *x, int level);
  // Stores x at the given level without linking it (not reachable until linked); returns its id.
  uint32_t append(const float *x, int level);
  // Elements appended but not linked yet.
  size_t pending() const { return size() - linked_; }
  // Links the pending elements with `threads` threads: the calling thread and threads - 1 new
  // ones (with every signal blocked), which touch nothing but this graph. Neighbour lists are
  // guarded by a spin lock per element, the entry point by a mutex (as hnswlib's addPoint). The
  // calling thread calls poll(elements linked so far) after each element it links; when poll
  // returns false, every thread stops after its current element and the call returns with the
  // rest still pending. Returns how many were linked. Joins its threads before returning or
  // throwing; rethrows the first exception of any thread.
  size_t link_pending(int threads, const std::function<bool(size_t)> &poll);
  // Second pass over the linked elements [begin, end) on layer 0: each searches the finished
  // graph for its neighbours again (ef_construction), re-selects among those and its current
  // ones with the heuristic, and links back to the kept ones. The elements inserted early chose
  // their neighbours in a small graph; this raises recall for about as many elements visited
  // (figures: docs/index.md) and costs about as much as linking. Threads, poll and return value as
  // link_pending (elements [begin, begin + returned) are done).
  size_t refine(size_t begin, size_t end, int threads, const std::function<bool(size_t)> &poll);
  // After every element is linked: makes every element reachable on layer 0 from the entry
  // point. The heuristic without fill leaves a few elements (~0.2 % of 100,000 clustered 512-d
  // vectors) that no list links to; each gets a link from its nearest reachable neighbour (in
  // place of that one's farthest neighbour when its list is full, never the only link to an
  // element). Returns the links added. One thread.
  size_t connect_unreachable();
  // The k nearest by graph distance found with a candidate list of ef (k <= ef).
  std::vector<Candidate> search(const float *q, int k, int ef) const;

  size_t size() const { return levels_.size(); }
  int dim() const { return dim_; }
  int m() const { return m_; }
  Metric metric() const { return metric_; }
  int entry_point() const { return entry_; }
  int max_level() const { return max_level_; }
  int level(uint32_t id) const { return levels_[id]; }
  const int8_t *code(uint32_t id) const { return &codes_[static_cast<size_t>(id) * dim_]; }
  const CodeHeader &header(uint32_t id) const { return hdrs_[id]; }
  const int8_t *code2(uint32_t id) const { return &codes2_[static_cast<size_t>(id) * dim_]; }
  const CodeHeader &header2(uint32_t id) const { return hdrs2_[id]; }
  // Neighbour ids of id on a layer (count written to *n). Not while link_pending runs.
  const uint32_t *neighbors(uint32_t id, int layer, int *n) const;
  // Bytes of memory in use per element of the given level, for budgeting.
  static size_t element_bytes(int dim, int m, int level);
  // Bytes in use (elements and the linking threads' visited tags).
  size_t memory_bytes() const;

 private:
  struct Context;  // one linking thread's scratch

  uint32_t *slot(uint32_t id, int layer);    // [count, ids...]
  float *slot_dist(uint32_t id, int layer);  // the distances of the ids in slot()
  const uint32_t *slot(uint32_t id, int layer) const;
  float node_distance(const float *q, float qnorm2, uint32_t id) const {
    return code_distance(metric_, q, qnorm2, code(id), hdrs_[id], dim_);
  }
  void prepare(Context &ctx) const;  // sizes the scratch for the current size()
  // The graph view of hnsw::search_layer (hnsw_graph.cpp) with dist(id), the graph distance of a
  // node to the query.
  template <typename Dist>
  class View;
  // hnsw::search_layer over this graph from the entry candidates; returns up to ef candidates,
  // nearest first, in out.
  template <typename Dist>
  void search_layer(Context &ctx, Dist dist, const std::vector<Candidate> &entry, int ef, int layer,
                    std::vector<Candidate> &out) const;
  void link(uint32_t id, Context &ctx);    // thread-safe against other link() calls
  void relink(uint32_t id, Context &ctx);  // refine()'s step, thread-safe likewise
  template <typename Fn>
  size_t run_threads(size_t begin, size_t end, int threads, const std::function<bool(size_t)> &poll,
                     Fn fn);
  void connect(Context &ctx, uint32_t from, uint32_t to, float dist, int layer);
  // The heuristic over c (nearest first) keeping at most cap, without fill (hnswlib's choice:
  // pruned candidates are not added back); indices into c in ctx.sel_buf.
  int select(Context &ctx, const std::vector<Candidate> &c, int cap) const;
  // Sorts candidates c by distance and stores the neighbour selection's choice among them (at
  // most cap) in the list s (s[0] the count) with distances sd.
  void store_selected(Context &ctx, std::vector<Candidate> &c, int cap, uint32_t *s,
                      float *sd) const;

  int dim_;
  Metric metric_;
  int m_;
  int ef_construction_;
  int entry_ = -1;      // guarded by entry_mu_ while linking
  int max_level_ = -1;  // guarded by entry_mu_ while linking
  std::mutex entry_mu_;
  size_t memory_ = 0;
  size_t linked_ = 0;  // elements [0, linked_) are linked
  std::vector<int8_t> codes_;
  std::vector<CodeHeader> hdrs_;
  std::vector<int8_t> codes2_;  // refinement codes (quantize_residual)
  std::vector<CodeHeader> hdrs2_;
  std::vector<uint8_t> levels_;
  mutable std::vector<uint8_t> locks_;          // per node: spin lock of its neighbour lists
  std::vector<uint32_t> layer0_;                // per node: count + 2m ids
  std::vector<std::vector<uint32_t>> upper_;    // per node: layers 1..level, each count + m ids
  std::vector<float> layer0_dist_;              // per node: the 2m neighbours' distances
  std::vector<std::vector<float>> upper_dist_;  // per node: layers 1..level, m distances each
  std::vector<std::unique_ptr<Context>> ctx_;   // one per linking thread
  mutable std::unique_ptr<Context> search_ctx_;
};

}  // namespace lookalike::hnsw
