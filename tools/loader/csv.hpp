// A CSV reader for catalogue metadata files such as the fashion set's styles.csv. Pure C++ (no
// PostgreSQL, no libpq): the loader (tools/loader/) and the unit tests use it.
//
// The format is RFC 4180 with two tolerances that real catalogue exports need:
//  - a line may end in CRLF or LF (a trailing CR is dropped);
//  - a record with MORE fields than the header has unquoted commas inside its LAST column (the
//    fashion set's styles.csv has 22 such lines in productDisplayName): the extra fields are
//    joined back, with ',', into the last column. A record with FEWER fields is an error.
// Values are kept as written: `NA` and the empty string are ordinary values, never NULL.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lookalike::loader {

// Splits one physical line into fields. Quoted fields ("a, ""b""") may contain commas and
// doubled quotes. Returns false and sets *error for malformed quoting (an unterminated quote,
// text after a closing quote). Quoted fields that span several lines are not supported: the
// loader reports such lines as unreadable.
bool split_csv_line(std::string_view line, std::vector<std::string> &fields, std::string *error);

// One record of a file read with a fixed header.
struct Record {
  size_t line_number = 0;           // 1-based physical line number in the file
  std::vector<std::string> fields;  // exactly header-width fields
  bool rejoined = false;            // true if extra fields were joined into the last column
};

// One line that could not be read.
struct BadLine {
  size_t line_number = 0;
  std::string reason;
};

// Reads a whole CSV text with a header line. Every data line becomes a Record with exactly as
// many fields as the header (extra fields joined into the last column), or a BadLine (too few
// fields, malformed quoting). Empty lines are skipped. Throws lookalike::Error (22P02) if the
// text has no header line.
class CsvTable {
 public:
  static CsvTable parse(std::string_view text);

  const std::vector<std::string> &header() const { return header_; }
  const std::vector<Record> &records() const { return records_; }
  const std::vector<BadLine> &bad_lines() const { return bad_lines_; }
  // Index of the column named `name` in the header, or -1.
  int column(std::string_view name) const;

 private:
  std::vector<std::string> header_;
  std::vector<Record> records_;
  std::vector<BadLine> bad_lines_;
};

// Parses a decimal 32-bit integer (optional sign, no spaces). Returns false if `s` is not one.
bool parse_int32(std::string_view s, int *out);

}  // namespace lookalike::loader
