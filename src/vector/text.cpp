#include "vector/text.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
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
  if (*p == ']') {
    // "[]" is well-formed text of no component: any text after it is malformed first.
    ++p;
    while (is_space(*p)) ++p;
    if (*p != '\0') syntax_error(s);
    throw Error(sqlstate::kDataException, "embedding must have at least 1 dimension");
  }
  size_t n = 0;
  const char *end = p + std::strlen(p);
  for (;;) {
    while (is_space(*p)) ++p;
    // from_chars takes no leading '+' (strtof does): skip one, but never a sign after it.
    if (*p == '+' && p[1] != '-' && p[1] != '+') ++p;
    float v = 0;
    auto res = std::from_chars(p, end, v);
    if (res.ec == std::errc::invalid_argument || res.ptr == p) syntax_error(s);
    const char *token = p;
    p = res.ptr;
    while (is_space(*p)) ++p;
    // The text after a number decides first: "[nanx]" and "[infinity1]" are malformed text,
    // not a NaN or an infinity.
    const bool last = *p == ']';
    if (!last && *p != ',') syntax_error(s);
    const std::string literal(token, res.ptr);
    if (res.ec == std::errc::result_out_of_range) {
      // from_chars reports overflow and underflow alike. As for type real: a value that rounds
      // to zero or infinity is out of range (22003); a subnormal one is kept.
      v = std::strtof(literal.c_str(), nullptr);
      if (v == 0.0f || std::isinf(v))
        throw Error(sqlstate::kNumericValueOutOfRange,
                    "\"" + literal + "\" is out of range for type real");
    }
    if (std::isnan(v)) throw Error(sqlstate::kDataException, "NaN not allowed in embedding");
    if (std::isinf(v))
      throw Error(sqlstate::kDataException, "infinite value not allowed in embedding");
    if (n >= cap || n >= static_cast<size_t>(kMaxDims)) {
      throw Error(sqlstate::kProgramLimitExceeded,
                  "embedding cannot have more than " + std::to_string(kMaxDims) + " dimensions");
    }
    out[n++] = v;
    ++p;  // past ',' or ']'
    if (last) break;
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
