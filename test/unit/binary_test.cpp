// The embedding binary form: decoder (embedding_recv's pure part) and encoder.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "vector/binary.hpp"

using lookalike::Error;
namespace binary = lookalike::binary;

namespace {

std::string sqlstate_of(const std::vector<uint8_t> &m) {
  try {
    std::vector<float> out(lookalike::kMaxDims + 1);
    binary::decode(m.data(), m.size(), out.data());
  } catch (const Error &e) {
    return e.sqlstate();
  }
  return "ok";
}

std::vector<uint8_t> encoded(const std::vector<float> &x) {
  std::vector<uint8_t> m(binary::encoded_size(x.size()));
  binary::encode(x.data(), x.size(), m.data());
  return m;
}

}  // namespace

TEST(Binary, RoundTripIsBitExact) {
  std::vector<float> x = {1.0f, -2.5f, 3.4028235e38f, -1.17549435e-38f, 1e-45f, -0.0f};
  auto m = encoded(x);
  ASSERT_EQ(m.size(), 4 + 4 * x.size());
  EXPECT_EQ(m[0], 0);
  EXPECT_EQ(m[1], 6);
  EXPECT_EQ(m[4], 0x3F);  // 1.0f = 0x3F800000, big-endian
  EXPECT_EQ(m[5], 0x80);
  std::vector<float> y(binary::decode_dim(m.data(), m.size()));
  ASSERT_EQ(binary::decode(m.data(), m.size(), y.data()), 6);
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), sizeof(float) * x.size()));
}

TEST(Binary, RejectsMalformedMessages) {
  EXPECT_EQ(sqlstate_of({}), "22P03");
  EXPECT_EQ(sqlstate_of({0, 1, 0}), "22P03");
  EXPECT_EQ(sqlstate_of({0, 0, 0, 0}), "22000");                       // zero dimensions
  EXPECT_EQ(sqlstate_of({0x3E, 0x81, 0, 0}), "54000");                 // 16001
  EXPECT_EQ(sqlstate_of({0xFF, 0xFF, 0, 0}), "54000");                 // 65535, read unsigned
  EXPECT_EQ(sqlstate_of({0, 1, 0, 1, 0x3F, 0x80, 0, 0}), "22P03");     // reserved field
  EXPECT_EQ(sqlstate_of({0, 2, 0, 0, 0x3F, 0x80, 0, 0}), "22P03");     // payload too short
  EXPECT_EQ(sqlstate_of({0, 1, 0, 0, 0x3F, 0x80, 0, 0, 0}), "22P03");  // trailing byte
  EXPECT_EQ(sqlstate_of({0, 1, 0, 0, 0x7F, 0xC0, 0, 0}), "22000");     // NaN
  EXPECT_EQ(sqlstate_of({0, 1, 0, 0, 0xFF, 0x80, 0, 0}), "22000");     // -infinity
  EXPECT_EQ(sqlstate_of({0, 1, 0, 0, 0x3F, 0x80, 0, 0}), "ok");
}

TEST(Binary, LargestDimension) {
  std::vector<float> x(lookalike::kMaxDims, 0.5f);
  auto m = encoded(x);
  EXPECT_EQ(binary::decode_dim(m.data(), m.size()), lookalike::kMaxDims);
}
