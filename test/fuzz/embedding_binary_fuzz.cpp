// libFuzzer target: the embedding binary form (embedding_recv's pure part, src/vector/binary.cpp).
// Properties: bad messages raise 22P03, 22000 or 54000 and nothing else; an accepted message
// re-encodes to the same bytes (binary round trip) and its text form parses back to the same
// bits (a value accepted in binary must also survive pg_dump's text form).
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "vector/binary.hpp"
#include "vector/text.hpp"

using namespace lookalike;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int dim;
  std::vector<float> x;
  try {
    dim = binary::decode_dim(data, size);
    x.resize(dim);
    if (binary::decode(data, size, x.data()) != dim) fuzz::fail("decode and decode_dim disagree");
  } catch (const Error &e) {
    fuzz::expect_sqlstate(e, {"22P03", "22000", "54000"});
    return 0;
  }
  std::vector<uint8_t> again(binary::encoded_size(dim));
  binary::encode(x.data(), dim, again.data());
  if (again.size() != size || std::memcmp(again.data(), data, size))
    fuzz::fail("binary round trip changed the bytes");
  std::vector<char> buf(text::max_text_length(dim));
  text::format(x.data(), dim, buf.data());
  std::vector<float> y(text::max_elements(buf.data()));
  size_t m;
  try {
    m = text::parse(buf.data(), y.data(), y.size());
  } catch (const Error &e) {
    std::fprintf(stderr, "text form \"%.200s\" of a binary value does not parse: %s\n", buf.data(),
                 e.what());
    std::abort();
  }
  if (m != static_cast<size_t>(dim) || std::memcmp(x.data(), y.data(), dim * sizeof(float)))
    fuzz::fail("text form of a binary value changed it");
  fuzz::accepted();
  return 0;
}
