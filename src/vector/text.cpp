#include "vector/text.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <string>
#include <system_error>

#include "common/constants.hpp"
#include "common/errors.hpp"

namespace lookalike::text {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

[[noreturn]] void syntax_error(const char *s) {
  throw Error(sqlstate::kInvalidTextRepresentation,
              std::string("invalid input syntax for type embedding: \"") + s + "\"",
              "An embedding is written as a bracketed, comma-separated list of numbers, "
              "for example [1,2.5,3].");
}

}  // namespace

size_t max_elements(const char *s) {
  size_t n = 1;
  for (const char *p = s; *p; ++p)
    if (*p == ',') ++n;
  return n;
}

size_t parse(const char *s, float *out, size_t cap) {
  const char *p = s;
  while (is_space(*p)) ++p;
  if (*p != '[') syntax_error(s);
  ++p;
  while (is_space(*p)) ++p;
  size_t n = 0;
  if (*p == ']') {
    throw Error(sqlstate::kDataException, "embedding must have at least 1 dimension");
  }
  const char *end = p + std::strlen(p);
  for (;;) {
    while (is_space(*p)) ++p;
    if (*p == '+') ++p;  // from_chars does not take a leading '+'; strtof does
    float v = 0;
    auto res = std::from_chars(p, end, v);
    if (res.ec == std::errc::invalid_argument || res.ptr == p) syntax_error(s);
    std::string token(p, res.ptr);
    if (res.ec == std::errc::result_out_of_range) {
      // from_chars reports both overflow and underflow; underflow rounds to zero like strtof.
      double d = std::strtod(token.c_str(), nullptr);
      if (std::fabs(d) > 1.0) {
        throw Error(sqlstate::kNumericValueOutOfRange,
                    "\"" + token + "\" is out of range for type real");
      }
      v = static_cast<float>(d);
    }
    if (std::isnan(v)) throw Error(sqlstate::kDataException, "NaN not allowed in embedding");
    if (std::isinf(v))
      throw Error(sqlstate::kDataException, "infinite value not allowed in embedding");
    if (n >= cap || n >= static_cast<size_t>(kMaxDims)) {
      throw Error(sqlstate::kProgramLimitExceeded,
                  "embedding cannot have more than " + std::to_string(kMaxDims) + " dimensions");
    }
    out[n++] = v;
    p = res.ptr;
    while (is_space(*p)) ++p;
    if (*p == ',') {
      ++p;
      continue;
    }
    if (*p == ']') {
      ++p;
      break;
    }
    syntax_error(s);
  }
  while (is_space(*p)) ++p;
  if (*p != '\0') syntax_error(s);
  return n;
}

size_t format(const float *x, size_t n, char *buf) {
  char *p = buf;
  *p++ = '[';
  for (size_t i = 0; i < n; ++i) {
    if (i) *p++ = ',';
    auto res = std::to_chars(p, p + kMaxFloatChars, x[i]);
    p = res.ptr;
  }
  *p++ = ']';
  *p = '\0';
  return static_cast<size_t>(p - buf);
}

}  // namespace lookalike::text
