// libFuzzer target: the embedding text parser (embedding_in's pure part, src/vector/text.cpp).
// Input: any bytes, cut at the first NUL (a PostgreSQL cstring). Properties, checked against an
// independent grammar of the text form (below):
//  - bad text raises 22P02, 22003, 22000 or 54000 and nothing else;
//  - accepted text is well-formed numbers only (no "[+-1]", no NaN or infinity words) with
//    1..kMaxDims finite components, and a number with a non-zero digit is not read as 0
//    (underflow is 22003, as for type real);
//  - well-formed text (numbers, or NaN/infinity words) is never refused as malformed (22P02);
//  - the printed form parses back to the same bits (text round trip).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <strings.h>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "fuzz_common.hpp"
#include "vector/text.hpp"

using namespace lookalike;

namespace {

bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool digit(char c) { return c >= '0' && c <= '9'; }

// One number at p: [+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?, or with `words`
// also [+-]? (nan | inf | infinity) in any case. Returns the end, or nullptr. *nonzero tells
// whether the mantissa has a non-zero digit.
const char *number(const char *p, bool words, bool *nonzero) {
  *nonzero = false;
  if (*p == '+' || *p == '-') ++p;
  if (words) {
    for (const char *w : {"infinity", "inf", "nan"}) {
      size_t n = std::strlen(w);
      if (strncasecmp(p, w, n) == 0) return p + n;
    }
  }
  const char *start = p;
  while (digit(*p)) *nonzero |= *p++ != '0';
  bool int_part = p > start;
  if (*p == '.') {
    ++p;
    const char *frac = p;
    while (digit(*p)) *nonzero |= *p++ != '0';
    if (!int_part && p == frac) return nullptr;
  } else if (!int_part) {
    return nullptr;
  }
  if (*p == 'e' || *p == 'E') {
    const char *q = p + 1;
    if (*q == '+' || *q == '-') ++q;
    if (!digit(*q)) return p;  // "1e" is the number 1 followed by "e" (malformed after it)
    while (digit(*q)) ++q;
    p = q;
  }
  return p;
}

// Whether s is well-formed embedding text; fills nonzero[i] per number.
bool well_formed(const char *p, bool words, std::vector<bool> *nonzero) {
  while (space(*p)) ++p;
  if (*p++ != '[') return false;
  for (;;) {
    while (space(*p)) ++p;
    bool nz;
    p = number(p, words, &nz);
    if (!p) return false;
    nonzero->push_back(nz);
    while (space(*p)) ++p;
    if (*p == ']') break;
    if (*p++ != ',') return false;
  }
  ++p;
  while (space(*p)) ++p;
  return *p == '\0';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string s(reinterpret_cast<const char *>(data), size);
  s.resize(std::strlen(s.c_str()));
  size_t cap = text::max_elements(s.c_str());
  if (cap > static_cast<size_t>(kMaxDims)) cap = kMaxDims + 1;  // as embedding_in does
  std::vector<float> x(cap);
  size_t n;
  try {
    n = text::parse(s.c_str(), x.data(), x.size());
  } catch (const Error &e) {
    fuzz::expect_sqlstate(e, {"22P02", "22003", "22000", "54000"});
    std::vector<bool> nz;
    if (!std::strcmp(e.sqlstate(), "22P02") && well_formed(s.c_str(), true, &nz))
      fuzz::fail("well-formed text refused as malformed (22P02)");
    return 0;
  }
  std::vector<bool> nonzero;
  if (!well_formed(s.c_str(), false, &nonzero)) fuzz::fail("malformed text accepted");
  if (nonzero.size() != n) fuzz::fail("number of components differs from the grammar's");
  for (size_t i = 0; i < n; ++i)
    if (nonzero[i] && x[i] == 0.0f) fuzz::fail("a non-zero number read as 0 (underflow)");
  if (n < 1 || n > static_cast<size_t>(kMaxDims)) fuzz::fail("dimension out of range");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fuzz::fail("non-finite component accepted");
  std::vector<char> buf(text::max_text_length(n));
  size_t len = text::format(x.data(), n, buf.data());
  if (len + 1 > buf.size() || std::strlen(buf.data()) != len) fuzz::fail("format length");
  std::vector<float> y(text::max_elements(buf.data()));
  size_t m;
  try {
    m = text::parse(buf.data(), y.data(), y.size());
  } catch (const Error &e) {
    std::fprintf(stderr, "printed form \"%s\" does not parse: %s\n", buf.data(), e.what());
    std::abort();
  }
  if (m != n || std::memcmp(x.data(), y.data(), n * sizeof(float)))
    fuzz::fail("text round trip changed the value");
  fuzz::accepted();
  return 0;
}
