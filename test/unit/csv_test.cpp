// Unit tests of the catalogue CSV reader (tools/loader/csv.cpp), including the fashion set's
// styles.csv: 44,446 records, 22 of them with unquoted commas in productDisplayName.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/errors.hpp"
#include "loader/csv.hpp"

using lookalike::loader::CsvTable;
using lookalike::loader::parse_int32;
using lookalike::loader::split_csv_line;

namespace {

std::vector<std::string> split(std::string_view line) {
  std::vector<std::string> f;
  std::string err;
  EXPECT_TRUE(split_csv_line(line, f, &err)) << err;
  return f;
}

}  // namespace

TEST(Csv, SplitsPlainAndQuotedFields) {
  EXPECT_EQ(split("a,b,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split("a,,c,"), (std::vector<std::string>{"a", "", "c", ""}));
  EXPECT_EQ(split("x\r"), (std::vector<std::string>{"x"}));
  EXPECT_EQ(split(R"(1,"Nike 3.5"" Pink, Short",z)"),
            (std::vector<std::string>{"1", "Nike 3.5\" Pink, Short", "z"}));
  EXPECT_EQ(split(R"("")"), (std::vector<std::string>{""}));
  EXPECT_EQ(split("NA,NA"), (std::vector<std::string>{"NA", "NA"}));
}

TEST(Csv, RejectsMalformedQuotes) {
  std::vector<std::string> f;
  std::string err;
  EXPECT_FALSE(split_csv_line(R"(1,"open)", f, &err));
  EXPECT_EQ(err, "unterminated quoted field");
  EXPECT_FALSE(split_csv_line(R"(1,"a"b,2)", f, &err));
  EXPECT_EQ(err, "unexpected character after a closing quote");
}

TEST(Csv, RejoinsExtraFieldsIntoTheLastColumnAndReportsShortLines) {
  const auto t = CsvTable::parse(
      "id,colour,name\r\n"
      "1,Blue,Plain name\r\n"
      "2,NA,Set of perfume, balm, and gel\n"
      "\n"
      "3,Red\n"
      "4,\"Navy, Blue\",x\n"
      "5,\"bad\n"
      "6,,\n");
  EXPECT_EQ(t.header(), (std::vector<std::string>{"id", "colour", "name"}));
  ASSERT_EQ(t.records().size(), 4u);
  EXPECT_EQ(t.records()[0].fields[2], "Plain name");
  EXPECT_FALSE(t.records()[0].rejoined);
  EXPECT_EQ(t.records()[1].fields,
            (std::vector<std::string>{"2", "NA", "Set of perfume, balm, and gel"}));
  EXPECT_TRUE(t.records()[1].rejoined);
  EXPECT_EQ(t.records()[1].line_number, 3u);
  EXPECT_EQ(t.records()[2].fields[1], "Navy, Blue");
  EXPECT_EQ(t.records()[3].fields, (std::vector<std::string>{"6", "", ""}));
  EXPECT_EQ(t.records()[3].line_number, 8u);
  ASSERT_EQ(t.bad_lines().size(), 2u);
  EXPECT_EQ(t.bad_lines()[0].line_number, 5u);
  EXPECT_EQ(t.bad_lines()[0].reason, "2 fields, expected 3");
  EXPECT_EQ(t.bad_lines()[1].line_number, 7u);
  EXPECT_EQ(t.column("name"), 2);
  EXPECT_EQ(t.column("nope"), -1);
}

TEST(Csv, EmptyTextHasNoHeader) {
  EXPECT_THROW(CsvTable::parse(""), lookalike::Error);
  EXPECT_THROW(CsvTable::parse("\n\n"), lookalike::Error);
}

TEST(Csv, ParsesInt32) {
  int v = 0;
  EXPECT_TRUE(parse_int32("15970", &v));
  EXPECT_EQ(v, 15970);
  EXPECT_TRUE(parse_int32("-3", &v));
  EXPECT_EQ(v, -3);
  EXPECT_TRUE(parse_int32("+7", &v));
  EXPECT_EQ(v, 7);
  EXPECT_FALSE(parse_int32("", &v));
  EXPECT_FALSE(parse_int32("NA", &v));
  EXPECT_FALSE(parse_int32("12a", &v));
  EXPECT_FALSE(parse_int32("+-1", &v));
  EXPECT_FALSE(parse_int32("99999999999", &v));
}

TEST(Csv, ReadsTheFashionStylesFile) {
  std::ifstream in(std::string(LOOKALIKE_SHARED_DIR) + "/data/fashion/styles.csv",
                   std::ios::binary);
  ASSERT_TRUE(in.good()) << "shared data not found at " << LOOKALIKE_SHARED_DIR;
  std::stringstream ss;
  ss << in.rdbuf();
  const auto t = CsvTable::parse(ss.str());
  ASSERT_EQ(t.header().size(), 10u);
  EXPECT_EQ(t.header()[9], "productDisplayName");
  EXPECT_EQ(t.records().size(), 44446u);
  EXPECT_TRUE(t.bad_lines().empty());
  std::vector<size_t> rejoined;
  size_t na_usage = 0;
  for (const auto &r : t.records()) {
    if (r.rejoined) rejoined.push_back(r.line_number);
    if (r.fields[8] == "NA") ++na_usage;
    if (r.line_number == 6044) {
      EXPECT_EQ(r.fields[0], "44065");
      EXPECT_EQ(r.fields[9], "Boss Men Perfume, After Shave Balm and Shower Gel Set");
    }
  }
  const std::vector<size_t> expected = {6044,  6569,  7399,  7939,  9026,  10264, 10427, 10905,
                                        11373, 11945, 14112, 14532, 15076, 29906, 31625, 33020,
                                        35748, 35962, 37770, 38105, 38275, 38404};
  EXPECT_EQ(rejoined, expected);
  EXPECT_GT(na_usage, 0u);
}
