// The pure graph logic of the lookalike_hnsw index (no PostgreSQL headers): the int8 scalar
// quantisation codec that the graph is traversed with, distances between a float query and a
// code, the exact lower bounds that let the executor re-rank candidates with the true distance,
// level generation, the neighbour-selection heuristic of HNSW, and an in-memory HNSW graph used
// by the index build (and by the unit tests to check the algorithm without a server).
//
// Distances inside the graph are "graph distances": smaller is closer, and they order points the
// same way as the SQL operator of the metric:
//   L2      squared Euclidean distance           (operator <->, which returns the root)
//   IP      negative inner product               (operator <#>)
//   cosine  negative inner product of unit vectors (operator <=>, vectors normalised on the way in)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lookalike::hnsw {

enum class Metric : uint8_t { kL2 = 1, kInnerProduct = 2, kCosine = 3 };

inline constexpr int kMaxLevel = 15;  // levels 0..15; more would need 2^60 elements at m=2

// Per-element parameters of the int8 code: x ~ scale * code.
struct CodeHeader {
  float scale;  // max |x_i| / 127
  float resid;  // an upper bound of |x - scale * code| (Euclidean), for the lower bounds
  float norm2;  // |scale * code|^2, for the L2 graph distance
};

// Quantises x (dim components) into code. Symmetric, per vector. Never throws.
void quantize(const float *x, int dim, int8_t *code, CodeHeader *h);
// scale * code -> out
void dequantize(const int8_t *code, const CodeHeader &h, int dim, float *out);
// sum q[i] * code[i] (the instruction set follows kernels::active_isa()).
float dot_code(const float *q, const int8_t *code, int dim);

// sum a[i] * b[i] over two codes (AVX512-VNNI when the CPU has it and the active ISA is AVX-512).
int32_t dot_i8(const int8_t *a, const int8_t *b, int dim);
// Tests: true makes dot_i8 skip the VNNI variant.
extern bool force_no_vnni;

// Graph distance between two codes (both sides quantised).
inline float pair_distance(Metric metric, const int8_t *a, const CodeHeader &ha, const int8_t *b,
                           const CodeHeader &hb, int dim) {
  float ab = ha.scale * hb.scale * static_cast<float>(dot_i8(a, b, dim));
  if (metric == Metric::kL2) return ha.norm2 + hb.norm2 - 2.0f * ab;
  return -ab;
}

// Graph distance between the float query q (|q|^2 = qnorm2) and a code.
inline float code_distance(Metric metric, const float *q, float qnorm2, const int8_t *code,
                           const CodeHeader &h, int dim) {
  float qx = h.scale * dot_code(q, code, dim);
  if (metric == Metric::kL2) return qnorm2 - 2.0f * qx + h.norm2;
  return -qx;
}

// The refinement code: the quantisation error r = x - scale * code quantised again (int8, its own
// scale). h2.resid bounds |x - (scale * code + h2.scale * code2)|, h2.norm2 is the squared norm
// of that two-level reconstruction. Used only for the lower bounds of the results, so that they
// are tight (about 1/100 of the one-level bound): the executor then re-checks few rows.
void quantize_residual(const float *x, int dim, const int8_t *code, const CodeHeader &h,
                       int8_t *code2, CodeHeader *h2);

// A value never larger than what the SQL operator returns for (query, original vector), given
// the code of the vector: the executor re-checks the ORDER BY with the heap row and re-ranks.
// For cosine, q must be the unit-length query.
double lower_bound(Metric metric, const float *q, const int8_t *code, const CodeHeader &h, int dim);
// The same from both codes (tighter).
double lower_bound_refined(Metric metric, const float *q, const int8_t *code, const CodeHeader &h,
                           const int8_t *code2, const CodeHeader &h2, int dim);

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

// An HNSW graph in memory over int8 codes. Used by the index build (then written to pages) and by
// the unit tests. Not thread-safe. Throws std::bad_alloc when out of memory.
class Graph {
 public:
  Graph(int dim, Metric metric, int m, int ef_construction);

  // Adds x (already unit length for cosine) at the given level; returns its id (0, 1, 2, ...).
  uint32_t add(const float *x, int level);
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
  // Neighbour ids of id on a layer (count written to *n).
  const uint32_t *neighbors(uint32_t id, int layer, int *n) const;
  // Bytes of memory in use per element of the given level, for budgeting.
  static size_t element_bytes(int dim, int m, int level);
  size_t memory_bytes() const { return memory_; }

 private:
  uint32_t *slot(uint32_t id, int layer);    // [count, ids...]
  float *slot_dist(uint32_t id, int layer);  // the distances of the ids in slot()
  const uint32_t *slot(uint32_t id, int layer) const;
  float node_distance(const float *q, float qnorm2, uint32_t id) const {
    return code_distance(metric_, q, qnorm2, code(id), hdrs_[id], dim_);
  }
  // Best-first search of one layer from the entry candidates; dist(id) is the graph distance of
  // a node to the query. Returns up to ef candidates, nearest first, in out.
  template <typename Dist>
  void search_layer(Dist dist, std::vector<Candidate> &entry, int ef, int layer,
                    std::vector<Candidate> &out) const;
  void connect(uint32_t from, uint32_t to, float dist, int layer);
  // The heuristic over c (nearest first) keeping at most cap; indices into c in sel_buf_.
  int select(const std::vector<Candidate> &c, int cap);

  int dim_;
  Metric metric_;
  int m_;
  int ef_construction_;
  int entry_ = -1;
  int max_level_ = -1;
  size_t memory_ = 0;
  std::vector<int8_t> codes_;
  std::vector<CodeHeader> hdrs_;
  std::vector<int8_t> codes2_;  // refinement codes (quantize_residual)
  std::vector<CodeHeader> hdrs2_;
  std::vector<uint8_t> levels_;
  std::vector<uint32_t> layer0_;                // per node: count + 2m ids
  std::vector<std::vector<uint32_t>> upper_;    // per node: layers 1..level, each count + m ids
  std::vector<float> layer0_dist_;              // per node: the 2m neighbours' distances
  std::vector<std::vector<float>> upper_dist_;  // per node: layers 1..level, m distances each
  mutable std::vector<uint32_t> visited_;       // epoch tags
  mutable uint32_t epoch_ = 0;
  std::vector<float> scratch_;
  mutable std::vector<Candidate> cand_buf_, best_buf_;  // search_layer's heaps
  mutable std::vector<uint32_t> todo_;                  // search_layer: neighbours to measure
  std::vector<Candidate> conn_buf_;                     // connect(): candidates
  std::vector<float> dist_buf_;                         // select(): scratch
  std::vector<const int8_t *> code_buf_;
  std::vector<const CodeHeader *> hdr_buf_;
  std::vector<int> sel_buf_;
  std::unique_ptr<bool[]> flag_buf_;
  size_t flag_cap_ = 0;
};

}  // namespace lookalike::hnsw
