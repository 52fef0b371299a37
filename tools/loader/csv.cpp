// CSV reading for the catalogue loader. See csv.hpp.
#include "loader/csv.hpp"

#include <charconv>

#include "common/errors.hpp"

namespace lookalike::loader {

bool split_csv_line(std::string_view line, std::vector<std::string> &fields, std::string *error) {
  fields.clear();
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::string field;
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    field.clear();
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
          } else {
            ++i;
            closed = true;
            break;
          }
        } else {
          field.push_back(line[i++]);
        }
      }
      if (!closed) {
        if (error) *error = "unterminated quoted field";
        return false;
      }
      if (i < n && line[i] != ',') {
        if (error) *error = "unexpected character after a closing quote";
        return false;
      }
    } else {
      while (i < n && line[i] != ',') field.push_back(line[i++]);
    }
    fields.push_back(field);
    if (i >= n) break;
    ++i;  // the comma
  }
  return true;
}

CsvTable CsvTable::parse(std::string_view text) {
  CsvTable t;
  size_t pos = 0;
  size_t line_number = 0;
  bool have_header = false;
  std::vector<std::string> fields;
  std::string error;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (line.empty() || line == "\r") continue;
    if (!split_csv_line(line, fields, &error)) {
      if (!have_header)
        throw Error(sqlstate::kInvalidTextRepresentation, "malformed CSV header: " + error);
      t.bad_lines_.push_back({line_number, error});
      continue;
    }
    if (!have_header) {
      t.header_ = fields;
      have_header = true;
      continue;
    }
    const size_t width = t.header_.size();
    if (fields.size() < width) {
      t.bad_lines_.push_back({line_number, std::to_string(fields.size()) + " fields, expected " +
                                               std::to_string(width)});
      continue;
    }
    Record r;
    r.line_number = line_number;
    if (fields.size() > width) {
      std::string last = fields[width - 1];
      for (size_t k = width; k < fields.size(); ++k) last += "," + fields[k];
      fields.resize(width);
      fields[width - 1] = std::move(last);
      r.rejoined = true;
    }
    r.fields = fields;
    t.records_.push_back(std::move(r));
  }
  if (!have_header)
    throw Error(sqlstate::kInvalidTextRepresentation, "CSV text has no header line");
  return t;
}

int CsvTable::column(std::string_view name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return static_cast<int>(i);
  return -1;
}

bool parse_int32(std::string_view s, int *out) {
  if (s.empty()) return false;
  const char *b = s.data();
  if (*b == '+') {
    ++b;
    if (b == s.data() + s.size() || *b == '-') return false;
  }
  auto [p, ec] = std::from_chars(b, s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace lookalike::loader
