// A linear projection of embeddings, y = W (x - mean): the stored form that project() applies
// (fitted by lookalike.fit_projection(), e.g. a PCA whitening of a catalogue's CNN vectors).
// Pure C++: the byte format, its validation and the product with one vector.
//
// Byte format (little-endian, as stored in lookalike.projections.data):
//   "LKPJ"  u32 version (1)  u32 dims_in  u32 dims_out
//   float32 mean[dims_in]    float32 matrix[dims_out][dims_in] (row-major)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lookalike::projection {

inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 16;

// A view of a serialised projection (points into the bytes it was parsed from).
struct View {
  int dims_in = 0;
  int dims_out = 0;
  const float *mean = nullptr;    // dims_in values
  const float *matrix = nullptr;  // dims_out rows of dims_in values
};

// Bytes of a projection of the given shape.
size_t serialized_size(int dims_in, int dims_out);

// The byte form of (mean, matrix). Throws lookalike::Error (22023) for a bad shape, 22000 for a
// value that is not finite.
std::vector<uint8_t> serialize(int dims_in, int dims_out, const float *mean, const float *matrix);

// Checks the bytes (magic, version, shape, length; the values are trusted to be what serialize()
// wrote) and returns a view into them. Throws lookalike::Error (XX001) when they are malformed.
// The data must stay alive and 4-byte aligned while the view is used.
View parse(const uint8_t *data, size_t len);

// y = W (x - mean). x has dims_in values, y dims_out. Uses `centred` (dims_in floats) as
// scratch. Never throws.
void apply(const View &p, const float *x, float *centred, float *y);

}  // namespace lookalike::projection
