#include "vector/binary.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "common/constants.hpp"
#include "common/errors.hpp"

namespace lookalike::binary {
namespace {

uint32_t be32(const uint8_t *p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
int be16(const uint8_t *p) { return (int(p[0]) << 8) | p[1]; }

[[noreturn]] void bad(const std::string &msg) {
  throw Error(sqlstate::kInvalidBinaryRepresentation, "invalid binary embedding: " + msg);
}

}  // namespace

int decode_dim(const uint8_t *data, size_t len) {
  if (len < 4) bad(std::to_string(len) + " bytes, shorter than its 4-byte header");
  int dim = be16(data);
  int unused = be16(data + 2);
  if (dim < 1) throw Error(sqlstate::kDataException, "embedding must have at least 1 dimension");
  if (dim > kMaxDims) {
    throw Error(sqlstate::kProgramLimitExceeded,
                "embedding cannot have more than " + std::to_string(kMaxDims) + " dimensions");
  }
  if (unused != 0) bad("reserved field is " + std::to_string(unused) + ", expected 0");
  if (len - 4 != 4 * static_cast<size_t>(dim)) {
    bad(std::to_string(len - 4) + " bytes of data for " + std::to_string(dim) + " dimensions");
  }
  return dim;
}

int decode(const uint8_t *data, size_t len, float *out) {
  int dim = decode_dim(data, len);
  for (int i = 0; i < dim; ++i) {
    uint32_t bits = be32(data + 4 + 4 * static_cast<size_t>(i));
    float v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isnan(v)) throw Error(sqlstate::kDataException, "NaN not allowed in embedding");
    if (std::isinf(v))
      throw Error(sqlstate::kDataException, "infinite value not allowed in embedding");
    out[i] = v;
  }
  return dim;
}

void encode(const float *x, size_t n, uint8_t *out) {
  out[0] = static_cast<uint8_t>(n >> 8);
  out[1] = static_cast<uint8_t>(n);
  out[2] = out[3] = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    uint8_t *p = out + 4 + 4 * i;
    p[0] = static_cast<uint8_t>(bits >> 24);
    p[1] = static_cast<uint8_t>(bits >> 16);
    p[2] = static_cast<uint8_t>(bits >> 8);
    p[3] = static_cast<uint8_t>(bits);
  }
}

}  // namespace lookalike::binary
