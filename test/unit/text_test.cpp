// The embedding text form: parser and printer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "vector/text.hpp"

using lookalike::Error;
namespace text = lookalike::text;

namespace {

std::vector<float> parse(const std::string &s) {
  std::vector<float> out(text::max_elements(s.c_str()));
  out.resize(text::parse(s.c_str(), out.data(), out.size()));
  return out;
}

std::string sqlstate_of(const std::string &s) {
  try {
    parse(s);
  } catch (const Error &e) {
    return e.sqlstate();
  }
  return "none";
}

std::string format(const std::vector<float> &v) {
  std::string buf(text::max_text_length(v.size()), '\0');
  buf.resize(text::format(v.data(), v.size(), buf.data()));
  return buf;
}

TEST(Text, ParsesWhitespaceSignsAndExponents) {
  EXPECT_EQ(parse("[1,2,3]"), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(parse("  [ 1 , -2.5,+3e2 ]  "), (std::vector<float>{1, -2.5f, 300}));
  EXPECT_EQ(parse("[0e-50,-0]"), (std::vector<float>{0, -0.0f}));  // an exact zero is no underflow
  // subnormal values are kept, as type real keeps them
  EXPECT_EQ(parse("[1e-40]"), (std::vector<float>{std::strtof("1e-40", nullptr)}));
}

TEST(Text, RejectsMalformedTextWith22P02) {
  for (const char *s :
       {"", "1,2", "[1,2", "[1,,2]", "[1 2]", "[a]", "[1]x", "[,]", "[1,]", "(1,2)", "[--1]",
        // One sign per number; text after a number or after "[]" is malformed (the syntax is
        // checked before the values, so these are 22P02 and not a value error)
        "[+-1]", "[++1]", "[-+1]", "[nanx]", "[infx]", "[infinity1]", "[1,nanx]", "[]x", "[]]",
        "[ ] 1"})
    EXPECT_EQ(sqlstate_of(s), "22P02") << s;
}

TEST(Text, RejectsNonFiniteEmptyAndOutOfRange) {
  EXPECT_EQ(sqlstate_of("[NaN]"), "22000");
  EXPECT_EQ(sqlstate_of("[1,inf]"), "22000");
  EXPECT_EQ(sqlstate_of("[-Infinity]"), "22000");
  EXPECT_EQ(sqlstate_of("[]"), "22000");
  EXPECT_EQ(sqlstate_of("[1e39]"), "22003");
  EXPECT_EQ(sqlstate_of("[-1e39]"), "22003");
  // underflow: a value that would round to zero is out of range, as for type real
  EXPECT_EQ(sqlstate_of("[1e-46]"), "22003");
  EXPECT_EQ(sqlstate_of("[1,-1e-50]"), "22003");
  EXPECT_EQ(sqlstate_of("[ ]"), "22000");
}

TEST(Text, RejectsTooManyDimensionsWith54000) {
  std::string s = "[0";
  for (int i = 0; i < lookalike::kMaxDims; ++i) s += ",0";
  s += "]";
  EXPECT_EQ(sqlstate_of(s), "54000");
}

TEST(Text, PrintsShortestRoundTripForm) {
  EXPECT_EQ(format({1, 2.5f, -3}), "[1,2.5,-3]");
  EXPECT_EQ(format({0.1f}), "[0.1]");
  std::vector<float> extremes = {
      std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(),
      std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::min(), 1.0f / 3.0f};
  std::string s = format(extremes);
  EXPECT_LE(s.size(), text::max_text_length(extremes.size()));
  EXPECT_EQ(parse(s), extremes);  // bit-exact round trip
}

}  // namespace
