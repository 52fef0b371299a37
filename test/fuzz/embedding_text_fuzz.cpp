// libFuzzer target: the embedding text parser (embedding_in's pure part, src/vector/text.cpp).
// Input: any bytes, cut at the first NUL (a PostgreSQL cstring). Properties: bad text raises
// 22P02, 22003, 22000 or 54000 and nothing else; accepted text has 1..kMaxDims finite components;
// the printed form parses back to the same bits (text round trip).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "fuzz_common.hpp"
#include "vector/text.hpp"

using namespace lookalike;

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
    return 0;
  }
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
