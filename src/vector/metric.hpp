// The three distances of the embedding type, as one type for every feature that ranks by
// distance: exact top-k (topk.hpp, top_k()), the exact top-k scan's plans, the lookalike_hnsw
// index and top-k per partition.
#pragma once

#include <cstdint>

namespace lookalike {

// The integer values are stored in every lookalike_hnsw metapage and returned by the index's
// operator-class support functions (extension/parts/40_index.sql): never renumber them.
enum class Metric : uint8_t {
  kL2 = 1,            // <->: Euclidean distance
  kInnerProduct = 2,  // <#>: the negative inner product (smaller is more similar)
  kCosine = 3,        // <=>: 1 - cosine similarity
};

// Whether v is the integer value of a Metric.
inline bool is_metric(int v) { return v >= 1 && v <= 3; }

// Parses "cosine" (<=>), "l2" (<->) or "inner_product" (<#>); throws lookalike::Error (22023).
Metric parse_metric(const char *name);

// "cosine (<=>)", "l2 (<->)" or "negative inner product (<#>)": for EXPLAIN and messages.
const char *metric_name(Metric m);

}  // namespace lookalike
