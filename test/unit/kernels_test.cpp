// Distance kernels against a double-precision reference, for every ISA this CPU supports.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "vector/kernels.hpp"

using namespace lookalike::kernels;

namespace {

struct Ref {
  double dot = 0, l2 = 0, aa = 0, bb = 0;
};

Ref reference(const std::vector<float> &a, const std::vector<float> &b) {
  Ref r;
  for (size_t i = 0; i < a.size(); ++i) {
    double x = a[i], y = b[i];
    r.dot += x * y;
    r.l2 += (x - y) * (x - y);
    r.aa += x * x;
    r.bb += y * y;
  }
  return r;
}

std::vector<float> random_vec(std::mt19937 &rng, size_t n, float scale) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

class KernelTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " not on this CPU";
    ASSERT_TRUE(force_isa(GetParam()));
  }
  void TearDown() override { force_isa(Isa::kScalar); }
};

TEST_P(KernelTest, MatchesDoubleReferenceAtManyLengths) {
  std::mt19937 rng(42);
  // Lengths around every vector width and tail case, plus the real feature sizes.
  std::vector<size_t> lengths = {1,  2,  3,   7,   8,   9,   15,  16,  17,   31,   32,   33,  63,
                                 64, 65, 100, 127, 128, 129, 255, 512, 1000, 1280, 2048, 4097};
  for (size_t n : lengths) {
    auto a = random_vec(rng, n, 1.0f), b = random_vec(rng, n, 2.0f);
    Ref r = reference(a, b);
    double tol_scale = std::sqrt(static_cast<double>(n)) * 1e-6;
    EXPECT_NEAR(dot(a.data(), b.data(), n), r.dot, (std::sqrt(r.aa * r.bb) + 1) * tol_scale)
        << "n=" << n;
    EXPECT_NEAR(l2_squared(a.data(), b.data(), n), r.l2, (r.l2 + 1) * tol_scale) << "n=" << n;
    // The cosine parts are accumulated in double: as close to the reference as double allows
    // (a float accumulation would miss this by ~1e-7 relative).
    CosineParts p = cosine_parts(a.data(), b.data(), n);
    EXPECT_NEAR(p.ab, r.dot, (std::sqrt(r.aa * r.bb) + 1) * 1e-13) << "n=" << n;
    EXPECT_NEAR(p.aa, r.aa, (r.aa + 1) * 1e-13) << "n=" << n;
    EXPECT_NEAR(p.bb, r.bb, (r.bb + 1) * 1e-13) << "n=" << n;
    double cos_ref = 1.0 - r.dot / std::sqrt(r.aa * r.bb);
    EXPECT_NEAR(cosine_distance(a.data(), b.data(), n), cos_ref, 1e-5) << "n=" << n;
  }
}

TEST_P(KernelTest, ExactOnSmallIntegers) {
  // Sums of small integers are exact in float: every ISA must agree bit for bit.
  std::vector<float> a(1283), b(1283);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(static_cast<int>(i % 7) - 3);
    b[i] = static_cast<float>(static_cast<int>(i % 5) - 2);
  }
  Ref r = reference(a, b);
  EXPECT_EQ(dot(a.data(), b.data(), a.size()), static_cast<float>(r.dot));
  EXPECT_EQ(l2_squared(a.data(), b.data(), a.size()), static_cast<float>(r.l2));
}

TEST_P(KernelTest, CosineEdgeCases) {
  std::vector<float> z(40, 0.f), a(40, 1.f), neg(40, -1.f);
  EXPECT_TRUE(std::isnan(cosine_distance(z.data(), a.data(), 40)));
  EXPECT_TRUE(std::isnan(cosine_distance(a.data(), z.data(), 40)));
  EXPECT_DOUBLE_EQ(cosine_distance(a.data(), a.data(), 40), 0.0);
  EXPECT_DOUBLE_EQ(cosine_distance(a.data(), neg.data(), 40), 2.0);
  // Rounding never pushes the result outside [0, 2].
  std::mt19937 rng(7);
  for (int t = 0; t < 200; ++t) {
    auto v = random_vec(rng, 1 + t * 7, 1e3f);
    double d = cosine_distance(v.data(), v.data(), v.size());
    EXPECT_GE(d, 0.0);
    EXPECT_LT(d, 1e-6);
  }
}

// The exact top-k scan computes b.b of the query once and then only a.b and a.a per row: the
// result must equal the full kernel's bit for bit (ties and their order as the operator has them).
TEST_P(KernelTest, CosineWithFixedQueryEqualsFullKernel) {
  std::mt19937 rng(11);
  for (size_t n : {1, 3, 8, 9, 31, 32, 33, 100, 512, 515, 1280, 2049}) {
    auto q = random_vec(rng, n, 0.5f);
    const double qq = cosine_parts(q.data(), q.data(), n).bb;
    for (int t = 0; t < 20; ++t) {
      auto a = random_vec(rng, n, 1.0f + t);
      CosineParts full = cosine_parts(a.data(), q.data(), n);
      CosineParts fixed = cosine_parts_fixed(a.data(), q.data(), n, qq);
      EXPECT_EQ(full.ab, fixed.ab) << "n=" << n;
      EXPECT_EQ(full.aa, fixed.aa) << "n=" << n;
      EXPECT_EQ(full.bb, fixed.bb) << "n=" << n;
      const double d1 = cosine_distance(a.data(), q.data(), n), d2 = cosine_distance(fixed);
      EXPECT_EQ(d1, d2) << "n=" << n;
    }
  }
  std::vector<float> z(64, 0.f), a(64, 1.f);
  EXPECT_TRUE(std::isnan(cosine_distance(cosine_parts_fixed(a.data(), z.data(), 64, 0.0))));
  EXPECT_TRUE(std::isnan(cosine_distance(cosine_parts_fixed(z.data(), a.data(), 64, 64.0))));
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                         [](const auto &info) { return std::string(isa_name(info.param)); });

TEST(KernelDispatch, PicksTheBestSupportedIsa) {
  Isa best = cpu_supports(Isa::kAvx512) ? Isa::kAvx512
             : cpu_supports(Isa::kAvx2) ? Isa::kAvx2
                                        : Isa::kScalar;
  // force_isa(kScalar) in other tests' TearDown changes the table; restore and compare.
  ASSERT_TRUE(force_isa(best));
  EXPECT_EQ(active_isa(), best);
}

}  // namespace
