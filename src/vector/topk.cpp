// Exact batch k-NN. See topk.hpp.
#include "vector/topk.hpp"

#include <algorithm>
#include <cmath>

#include "vector/kernels.hpp"

namespace lookalike::topk {

double distance(Metric m, const float *a, const float *b, size_t dim) {
  switch (m) {
    case Metric::kCosine:
      return kernels::cosine_distance(a, b, dim);
    case Metric::kL2:
      return std::sqrt(static_cast<double>(kernels::l2_squared(a, b, dim)));
    case Metric::kInnerProduct:
      return -static_cast<double>(kernels::dot(a, b, dim));
  }
  return 0;
}

namespace {

struct Candidate {
  double d;
  int64_t id;
};

// PostgreSQL's float8 order: NaN after every number; ties by id.
bool before(const Candidate &x, const Candidate &y) {
  const bool xn = std::isnan(x.d), yn = std::isnan(y.d);
  if (xn != yn) return yn;
  if (!xn && x.d != y.d) return x.d < y.d;
  return x.id < y.id;
}

}  // namespace

std::vector<Neighbour> search(const float *queries, const int64_t *query_ids, size_t nq,
                              const float *vectors, const int64_t *ids, size_t nv, size_t dim,
                              size_t k, Metric m, bool exclude_self,
                              const std::function<void()> &each_query) {
  // Queries go in blocks: each vector is read once per block, while it is in cache, instead of
  // once per query (the vectors rarely fit in cache, the block's queries do).
  constexpr size_t kBlock = 16;
  std::vector<Neighbour> out;
  out.reserve(nq * std::min(k, nv));
  std::vector<double> dist(kBlock * nv);
  std::vector<Candidate> cand(nv);
  for (size_t q0 = 0; q0 < nq; q0 += kBlock) {
    if (each_query) each_query();
    const size_t nb = std::min(kBlock, nq - q0);
    for (size_t i = 0; i < nv; ++i) {
      const float *v = vectors + i * dim;
      for (size_t b = 0; b < nb; ++b)
        dist[b * nv + i] = distance(m, queries + (q0 + b) * dim, v, dim);
    }
    for (size_t b = 0; b < nb; ++b) {
      const int64_t qid = query_ids[q0 + b];
      size_t n = 0;
      for (size_t i = 0; i < nv; ++i) {
        if (exclude_self && ids[i] == qid) continue;
        cand[n++] = {dist[b * nv + i], ids[i]};
      }
      const size_t take = std::min(k, n);
      std::partial_sort(cand.begin(), cand.begin() + take, cand.begin() + n, before);
      for (size_t r = 0; r < take; ++r)
        out.push_back({qid, static_cast<int32_t>(r + 1), cand[r].id, cand[r].d});
    }
  }
  return out;
}

}  // namespace lookalike::topk
