// Exact k-nearest-neighbour search over in-memory float vectors: a batch of queries against a
// set of vectors, with the distances of the SQL operators (the same kernels, so a result equals
// `ORDER BY v <op> q, id LIMIT k`). Pure C++ (no PostgreSQL): used by exact_knn() and the
// evaluation machinery, and unit-tested.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "vector/metric.hpp"

namespace lookalike::topk {

struct Neighbour {
  int64_t query_id;
  int32_t rank;  // 1-based
  int64_t id;
  double distance;
};

// Distance of the SQL operator for `m` (cosine: NaN for a zero vector).
double distance(Metric m, const float *a, const float *b, size_t dim);

// For each query (row-major `queries`, nq x dim, ids `query_ids`) the k vectors of `vectors`
// (nv x dim, ids `ids`) with the smallest distance, ordered by (distance, id); NaN distances
// sort last, as in PostgreSQL. With exclude_self, a vector whose id equals the query's id is
// skipped. `each_query` (may be empty) runs before every block of queries: the SQL side checks for
// interrupts there. Returns nq * min(k, candidates) neighbours, query by query.
std::vector<Neighbour> search(const float *queries, const int64_t *query_ids, size_t nq,
                              const float *vectors, const int64_t *ids, size_t nv, size_t dim,
                              size_t k, Metric m, bool exclude_self,
                              const std::function<void()> &each_query = {});

}  // namespace lookalike::topk
