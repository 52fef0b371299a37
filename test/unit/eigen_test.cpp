// The interruptible symmetric eigensolver (model/eigen.hpp), checked against what an
// eigendecomposition means -- A v = l v for every pair, orthonormal vectors, eigenvalues in
// decreasing order -- and against LAPACK (torch::linalg::eigh) on the same matrices; and its
// poll callback: called between steps, and an exception thrown there leaves the solver.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "common/errors.hpp"
#include "model/eigen.hpp"

using lookalike::model::symmetric_eigen;

namespace {

std::vector<double> random_symmetric(int n, unsigned seed, double scale_decay = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> a(size_t(n) * size_t(n));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) {
      const double v = g(rng) * std::pow(scale_decay, i + j);
      a[size_t(i) * size_t(n) + size_t(j)] = v;
      a[size_t(j) * size_t(n) + size_t(i)] = v;
    }
  return a;
}

// Largest |A v - l v| over all pairs and largest |V V^T - I|, relative to the largest |l|.
void expect_decomposition(int n, const std::vector<double> &a, const std::vector<double> &vecs,
                          const std::vector<double> &vals, double tol) {
  double scale = 0;
  for (double l : vals) scale = std::max(scale, std::abs(l));
  scale = std::max(scale, 1e-300);
  for (int i = 1; i < n; ++i) EXPECT_GE(vals[size_t(i - 1)], vals[size_t(i)]);
  double residual = 0, ortho = 0;
  for (int p = 0; p < n; ++p) {
    const double *v = &vecs[size_t(p) * size_t(n)];
    for (int i = 0; i < n; ++i) {
      double av = 0;
      for (int j = 0; j < n; ++j) av += a[size_t(i) * size_t(n) + size_t(j)] * v[j];
      residual = std::max(residual, std::abs(av - vals[size_t(p)] * v[i]) / scale);
    }
    for (int q = 0; q < n; ++q) {
      const double *w = &vecs[size_t(q) * size_t(n)];
      double dot = 0;
      for (int j = 0; j < n; ++j) dot += v[j] * w[j];
      ortho = std::max(ortho, std::abs(dot - (p == q ? 1.0 : 0.0)));
    }
  }
  EXPECT_LT(residual, tol) << "n=" << n;
  EXPECT_LT(ortho, tol) << "n=" << n;
}

void check(int n, const std::vector<double> &a, double tol = 1e-10) {
  std::vector<double> vecs = a, vals;
  symmetric_eigen(n, vecs, vals, [] {});
  ASSERT_EQ(vals.size(), size_t(n));
  expect_decomposition(n, a, vecs, vals, tol);
  // Same eigenvalues as LAPACK.
  torch::Tensor t = torch::from_blob(const_cast<double *>(a.data()), {n, n}, torch::kFloat64);
  torch::Tensor ref = std::get<0>(torch::linalg::eigh(t, "L")).flip(0).contiguous();
  double scale = 1e-300;
  for (double l : vals) scale = std::max(scale, std::abs(l));
  for (int i = 0; i < n; ++i)
    EXPECT_NEAR(vals[size_t(i)], ref[i].item<double>(), tol * scale) << "n=" << n << " i=" << i;
}

}  // namespace

TEST(SymmetricEigen, RandomMatricesOfManySizes) {
  for (int n : {1, 2, 3, 4, 5, 8, 17, 64, 130}) check(n, random_symmetric(n, unsigned(n)));
}

TEST(SymmetricEigen, WidelySpreadEigenvaluesLikeACovariance) {
  // Entries decaying by 0.8 per index: eigenvalues span many orders of magnitude.
  for (int n : {10, 50, 120}) check(n, random_symmetric(n, 7u + unsigned(n), 0.8), 1e-9);
}

TEST(SymmetricEigen, StructuredMatrices) {
  const int n = 12;
  std::vector<double> zero(size_t(n) * n, 0.0);
  check(n, zero);
  std::vector<double> diag(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) diag[size_t(i) * n + size_t(i)] = double((i * 7) % 5);  // repeats
  check(n, diag);
  std::vector<double> ones(size_t(n) * n, 1.0);  // rank 1: one eigenvalue n, the rest 0
  std::vector<double> vecs = ones, vals;
  symmetric_eigen(n, vecs, vals, [] {});
  EXPECT_NEAR(vals[0], double(n), 1e-12);
  for (int i = 1; i < n; ++i) EXPECT_NEAR(vals[size_t(i)], 0.0, 1e-12);
  expect_decomposition(n, ones, vecs, vals, 1e-12);
  // Already tridiagonal (the reflections are skipped) and 2 x 2 blocks.
  std::vector<double> tri(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) {
    tri[size_t(i) * n + size_t(i)] = 2.0;
    if (i + 1 < n) tri[size_t(i) * n + size_t(i + 1)] = tri[size_t(i + 1) * n + size_t(i)] = -1.0;
  }
  check(n, tri);
}

TEST(SymmetricEigen, PollIsCalledAndCanInterrupt) {
  const int n = 100;
  std::vector<double> a = random_symmetric(n, 3);
  int calls = 0;
  std::vector<double> vecs = a, vals;
  symmetric_eigen(n, vecs, vals, [&] { ++calls; });
  // One call per reflection (twice: reduction and accumulation) and per QL sweep.
  EXPECT_GE(calls, 2 * (n - 2));
  for (int stop_at : {1, n, 2 * n, calls - 1}) {
    int seen = 0;
    vecs = a;
    EXPECT_THROW(symmetric_eigen(n, vecs, vals,
                                 [&] {
                                   if (++seen == stop_at) throw std::runtime_error("cancel");
                                 }),
                 std::runtime_error)
        << "stop_at=" << stop_at;
    EXPECT_EQ(seen, stop_at);
  }
}

TEST(SymmetricEigen, RejectsAMatrixOfTheWrongSize) {
  std::vector<double> a(5), vals;
  EXPECT_THROW(symmetric_eigen(2, a, vals, [] {}), lookalike::Error);
  EXPECT_THROW(symmetric_eigen(0, a, vals, [] {}), lookalike::Error);
}
