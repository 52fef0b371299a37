// Binary form of an embedding (pgvector's too): int16 dim, int16 reserved (0), then dim float4,
// all in network byte order. Pure C++: the decoding that embedding_recv does, so that it can be
// unit-tested and fuzzed without a server. Errors are lookalike::Error with a SQLSTATE.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lookalike::binary {

// Bytes of the binary form of an n-dimensional embedding.
inline constexpr size_t encoded_size(size_t n) { return 4 + 4 * n; }

// Reads the dimension from the first 4 bytes of `data` (len bytes), checks the reserved field,
// the dimension range (1..kMaxDims) and that exactly dim * 4 bytes follow. Throws
// lookalike::Error: 22P03 for a short message, a non-zero reserved field or a wrong payload
// length, 22000 for dimension 0, 54000 above kMaxDims.
int decode_dim(const uint8_t *data, size_t len);

// Decodes the whole message into out[0..decode_dim(data, len)) (the caller sizes `out` from
// decode_dim) and returns the dimension. Throws what decode_dim throws, and 22000 for a NaN or
// infinite component.
int decode(const uint8_t *data, size_t len, float *out);

// Writes the binary form of x[0..n) into out (encoded_size(n) bytes).
void encode(const float *x, size_t n, uint8_t *out);

}  // namespace lookalike::binary
