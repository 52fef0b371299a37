// Unit tests of the exact batch k-NN (src/vector/topk.cpp): the order (distance, then id; NaN
// last), self exclusion, every metric, and agreement with a per-query brute force over random
// data larger than one block of queries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/errors.hpp"
#include "vector/kernels.hpp"
#include "vector/topk.hpp"

using lookalike::Metric;
using lookalike::topk::Neighbour;
using lookalike::topk::search;

TEST(TopK, OrdersByDistanceThenIdWithNanLast) {
  const float q[] = {1, 0};
  const int64_t qid[] = {1};
  // ids 9 and 4 tie (same direction), id 7 is a zero vector (NaN cosine), id 1 is the query.
  const float v[] = {2, 2, 1, 1, 0, 0, 1, 0, 0, 1};
  const int64_t vid[] = {9, 4, 7, 1, 5};
  auto r = search(q, qid, 1, v, vid, 5, 2, 10, Metric::kCosine, true);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].id, 4);
  EXPECT_EQ(r[1].id, 9);
  EXPECT_EQ(r[2].id, 5);
  EXPECT_EQ(r[3].id, 7);
  EXPECT_TRUE(std::isnan(r[3].distance));
  EXPECT_EQ(r[0].rank, 1);
  EXPECT_EQ(r[3].rank, 4);
  EXPECT_NEAR(r[0].distance, 1 - 1 / std::sqrt(2.0), 1e-7);
  auto with_self = search(q, qid, 1, v, vid, 5, 2, 1, Metric::kCosine, false);
  ASSERT_EQ(with_self.size(), 1u);
  EXPECT_EQ(with_self[0].id, 1);
}

TEST(TopK, L2AndInnerProduct) {
  const float q[] = {0, 0};
  const int64_t qid[] = {100};
  const float v[] = {3, 4, 1, 0, -1, 0};
  const int64_t vid[] = {1, 2, 3};
  auto r = search(q, qid, 1, v, vid, 3, 2, 3, Metric::kL2, true);
  EXPECT_EQ(r[0].id, 2);
  EXPECT_EQ(r[1].id, 3);
  EXPECT_EQ(r[2].id, 1);
  EXPECT_DOUBLE_EQ(r[2].distance, 5.0);
  const float q2[] = {1, 1};
  auto ip = search(q2, qid, 1, v, vid, 3, 2, 1, Metric::kInnerProduct, true);
  EXPECT_EQ(ip[0].id, 1);
  EXPECT_DOUBLE_EQ(ip[0].distance, -7.0);
}

TEST(TopK, MatchesBruteForceAcrossBlocks) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  const size_t nv = 300, nq = 37, dim = 24, k = 6;
  std::vector<float> v(nv * dim), q(nq * dim);
  for (auto &x : v) x = u(rng);
  std::vector<int64_t> vid(nv), qid(nq);
  for (size_t i = 0; i < nv; ++i) vid[i] = static_cast<int64_t>(1000 - i);
  for (size_t j = 0; j < nq; ++j) {  // queries are copies of some vectors: self exclusion matters
    qid[j] = vid[j * 7];
    std::copy(v.begin() + j * 7 * dim, v.begin() + (j * 7 + 1) * dim, q.begin() + j * dim);
  }
  for (Metric m : {Metric::kCosine, Metric::kL2, Metric::kInnerProduct}) {
    auto r = search(q.data(), qid.data(), nq, v.data(), vid.data(), nv, dim, k, m, true);
    ASSERT_EQ(r.size(), nq * k);
    for (size_t j = 0; j < nq; ++j) {
      std::vector<std::pair<double, int64_t>> all;
      for (size_t i = 0; i < nv; ++i)
        if (vid[i] != qid[j])
          all.push_back({lookalike::topk::distance(m, &q[j * dim], &v[i * dim], dim), vid[i]});
      std::sort(all.begin(), all.end());
      for (size_t r0 = 0; r0 < k; ++r0) {
        EXPECT_EQ(r[j * k + r0].query_id, qid[j]);
        EXPECT_EQ(r[j * k + r0].id, all[r0].second);
        EXPECT_EQ(r[j * k + r0].distance, all[r0].first);
      }
    }
  }
  // the cosine distance is the operator's
  EXPECT_EQ(lookalike::topk::distance(Metric::kCosine, &q[0], &v[5 * dim], dim),
            lookalike::kernels::cosine_distance(&q[0], &v[5 * dim], dim));
}

TEST(TopK, FewerCandidatesThanK) {
  const float q[] = {1};
  const int64_t qid[] = {1};
  const float v[] = {1, 2};
  const int64_t vid[] = {1, 2};
  EXPECT_EQ(search(q, qid, 1, v, vid, 2, 1, 5, Metric::kL2, true).size(), 1u);
}

TEST(TopK, ParsesMetrics) {
  EXPECT_EQ(lookalike::parse_metric("cosine"), Metric::kCosine);
  EXPECT_EQ(lookalike::parse_metric("<->"), Metric::kL2);
  EXPECT_EQ(lookalike::parse_metric("inner_product"), Metric::kInnerProduct);
  EXPECT_THROW(lookalike::parse_metric("hamming"), lookalike::Error);
}
