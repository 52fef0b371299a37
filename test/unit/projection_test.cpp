// Projections: the byte format and its validation (vector/projection.hpp), and the PCA whitening
// fit (model/whitening.hpp) checked against what whitening means: the projected rows'
// covariance is diagonal with the predicted variances.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "common/errors.hpp"
#include "model/whitening.hpp"
#include "vector/projection.hpp"

using namespace lookalike;

namespace {

std::string sqlstate_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const Error &e) {
    return e.sqlstate();
  }
  return "none";
}

// n rows of d dims: x = mean + A z with z standard normal, A a fixed random mixing matrix whose
// columns have very different scales (so the covariance is far from isotropic).
std::vector<float> correlated_rows(int n, int d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> a(size_t(d) * size_t(d)), mean(static_cast<size_t>(d));
  for (int i = 0; i < d; ++i) {
    mean[size_t(i)] = 0.5 + 0.1 * i;
    for (int j = 0; j < d; ++j) a[size_t(i) * size_t(d) + size_t(j)] = g(rng) * std::pow(0.6, j);
  }
  std::vector<float> rows(size_t(n) * size_t(d));
  std::vector<double> z(static_cast<size_t>(d));
  for (int r = 0; r < n; ++r) {
    for (auto &v : z) v = g(rng);
    for (int i = 0; i < d; ++i) {
      double x = mean[size_t(i)];
      for (int j = 0; j < d; ++j) x += a[size_t(i) * size_t(d) + size_t(j)] * z[size_t(j)];
      rows[size_t(r) * size_t(d) + size_t(i)] = float(x);
    }
  }
  return rows;
}

model::WhiteningFit fit(const std::vector<float> &rows, int d, double eps, double power, int k) {
  model::CovarianceAccumulator acc(d);
  for (size_t r = 0; r < rows.size() / size_t(d); ++r) acc.add(&rows[r * size_t(d)]);
  return model::fit_whitening(acc, eps, power, k);
}

// Covariance of the projected rows (through the serialised form and projection::apply).
std::vector<double> projected_covariance(const model::WhiteningFit &f,
                                         const std::vector<float> &rows) {
  std::vector<uint8_t> bytes =
      projection::serialize(f.dims_in, f.dims_out, f.mean.data(), f.matrix.data());
  projection::View v = projection::parse(bytes.data(), bytes.size());
  const int n = int(rows.size() / size_t(f.dims_in)), k = f.dims_out;
  std::vector<float> scratch(static_cast<size_t>(f.dims_in)), y(static_cast<size_t>(k));
  std::vector<double> sum(static_cast<size_t>(k)), cov(static_cast<size_t>(k) * size_t(k));
  std::vector<std::vector<float>> ys;
  for (int r = 0; r < n; ++r) {
    projection::apply(v, &rows[size_t(r) * size_t(f.dims_in)], scratch.data(), y.data());
    ys.push_back(y);
    for (int i = 0; i < k; ++i) sum[size_t(i)] += y[size_t(i)];
  }
  for (auto &row : ys)
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j)
        cov[size_t(i) * size_t(k) + size_t(j)] +=
            (row[size_t(i)] - sum[size_t(i)] / n) * (row[size_t(j)] - sum[size_t(j)] / n) / n;
  return cov;
}

}  // namespace

TEST(Projection, SerializeParseApply) {
  const int din = 3, dout = 2;
  const float mean[din] = {1, 2, 3};
  const float w[dout * din] = {1, 0, 0, 0.5f, 0.5f, -1};
  std::vector<uint8_t> b = projection::serialize(din, dout, mean, w);
  ASSERT_EQ(b.size(), projection::serialized_size(din, dout));
  projection::View v = projection::parse(b.data(), b.size());
  EXPECT_EQ(v.dims_in, din);
  EXPECT_EQ(v.dims_out, dout);
  const float x[din] = {2, 4, 7};
  float scratch[din], y[dout];
  projection::apply(v, x, scratch, y);
  EXPECT_FLOAT_EQ(y[0], 1.0f);                     // 2 - 1
  EXPECT_FLOAT_EQ(y[1], 0.5f * 1 + 0.5f * 2 - 4);  // (1, 2, 4) . (0.5, 0.5, -1)
}

TEST(Projection, MalformedBytesAreDataCorrupted) {
  const float mean[2] = {0, 0}, w[4] = {1, 0, 0, 1};
  std::vector<uint8_t> b = projection::serialize(2, 2, mean, w);
  EXPECT_EQ(sqlstate_of([&] { projection::parse(b.data(), b.size() - 1); }), "XX001");
  EXPECT_EQ(sqlstate_of([&] { projection::parse(b.data(), 8); }), "XX001");
  auto bad = b;
  bad[0] = 'X';
  EXPECT_EQ(sqlstate_of([&] { projection::parse(bad.data(), bad.size()); }), "XX001");
  bad = b;
  bad[4] = 9;  // version
  EXPECT_EQ(sqlstate_of([&] { projection::parse(bad.data(), bad.size()); }), "XX001");
  bad = b;
  bad[12] = 3;  // dims_out 3: the length no longer matches
  EXPECT_EQ(sqlstate_of([&] { projection::parse(bad.data(), bad.size()); }), "XX001");
  EXPECT_EQ(sqlstate_of([&] { projection::serialize(0, 2, mean, w); }), "22023");
  const float nan_w[4] = {1, NAN, 0, 1};
  EXPECT_EQ(sqlstate_of([&] { projection::serialize(2, 2, mean, nan_w); }), "22000");
}

// power 1/2 with a tiny epsilon is a full whitening: identity covariance.
TEST(Whitening, FullWhiteningGivesIdentityCovariance) {
  const int d = 8;
  auto rows = correlated_rows(4000, d, 7);
  auto f = fit(rows, d, 1e-9, 0.5, 0);
  ASSERT_EQ(f.dims_out, d);
  for (size_t i = 1; i < f.eigenvalues.size(); ++i)
    EXPECT_GE(f.eigenvalues[i - 1], f.eigenvalues[i]);  // largest first
  auto cov = projected_covariance(f, rows);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j)
      EXPECT_NEAR(cov[size_t(i) * d + size_t(j)], i == j ? 1.0 : 0.0, 2e-3) << i << "," << j;
}

// The mild whitening of the demo: component i has variance l_i * (l_i + eps * mean(l))^(-2p),
// and the components are uncorrelated; power 0 keeps the variances (a rotation).
TEST(Whitening, ShrunkWhiteningScalesEachComponent) {
  const int d = 6;
  auto rows = correlated_rows(3000, d, 11);
  for (double power : {0.0, 0.25}) {
    auto f = fit(rows, d, 1.0, power, 0);
    double mean_l = 0;
    for (double l : f.eigenvalues) mean_l += l;
    mean_l /= d;
    auto cov = projected_covariance(f, rows);
    for (int i = 0; i < d; ++i) {
      const double l = f.eigenvalues[size_t(i)];
      const double expect = l * std::pow(l + mean_l, -2 * power);
      EXPECT_NEAR(cov[size_t(i) * d + size_t(i)], expect, 1e-3 * (1 + expect)) << power << " " << i;
      for (int j = 0; j < d; ++j) {
        if (j == i) continue;
        EXPECT_NEAR(cov[size_t(i) * d + size_t(j)], 0.0, 1e-3 * (1 + expect));
      }
    }
  }
}

// components keeps the largest directions; the result does not depend on the batch boundaries
// of the accumulator or on the sign convention of the eigen solver (deterministic signs).
TEST(Whitening, ComponentsAndDeterminism) {
  const int d = 10;
  auto rows = correlated_rows(700, d, 3);  // not a multiple of the 256-row batch
  auto all = fit(rows, d, 1.0, 0.25, 0);
  auto top3 = fit(rows, d, 1.0, 0.25, 3);
  ASSERT_EQ(top3.dims_out, 3);
  ASSERT_EQ(top3.matrix.size(), size_t(3 * d));
  for (size_t i = 0; i < top3.matrix.size(); ++i) EXPECT_FLOAT_EQ(top3.matrix[i], all.matrix[i]);
  for (int i = 0; i < d; ++i) {  // the mean it subtracts is the rows' mean
    double m = 0;
    for (size_t r = 0; r < 700; ++r) m += rows[r * d + size_t(i)];
    EXPECT_NEAR(all.mean[size_t(i)], m / 700, 1e-5);
  }
  auto again = fit(rows, d, 1.0, 0.25, 0);
  EXPECT_EQ(std::memcmp(again.matrix.data(), all.matrix.data(), all.matrix.size() * sizeof(float)),
            0);
}

TEST(Whitening, BadInputIsRefused) {
  const int d = 3;
  const float x[d] = {1, 2, 3}, y[d] = {1, 2, 4};
  {
    model::CovarianceAccumulator acc(d);
    acc.add(x);
    EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, 1, 0.25, 0); }), "22023");  // 1 row
  }
  {
    model::CovarianceAccumulator acc(d);
    acc.add(x);
    acc.add(x);
    EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, 1, 0.25, 0); }), "22023");  // no variance
  }
  model::CovarianceAccumulator acc(d);
  acc.add(x);
  acc.add(y);
  EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, 1, 1.5, 0); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, -1, 0.25, 0); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, 0, 0.25, 0); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, 1, 0.25, 4); }), "22023");
  const float inf[d] = {1, INFINITY, 0};
  EXPECT_EQ(sqlstate_of([&] { acc.add(inf); }), "22000");
  EXPECT_EQ(sqlstate_of([&] { model::fit_whitening(acc, 1, 0.25, 2); }), "none");
}
