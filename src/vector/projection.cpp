#include "vector/projection.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "vector/kernels.hpp"

namespace lookalike::projection {
namespace {

constexpr char kMagic[4] = {'L', 'K', 'P', 'J'};

void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

void check_shape(int dims_in, int dims_out) {
  if (dims_in < 1 || dims_in > kMaxDims || dims_out < 1 || dims_out > kMaxDims)
    throw Error(sqlstate::kInvalidParameterValue,
                "a projection maps 1.." + std::to_string(kMaxDims) + " dimensions to 1.." +
                    std::to_string(kMaxDims) + ", not " + std::to_string(dims_in) + " to " +
                    std::to_string(dims_out));
}

}  // namespace

size_t serialized_size(int dims_in, int dims_out) {
  return kHeaderBytes + sizeof(float) * (static_cast<size_t>(dims_in) +
                                         static_cast<size_t>(dims_in) * size_t(dims_out));
}

std::vector<uint8_t> serialize(int dims_in, int dims_out, const float *mean, const float *matrix) {
  check_shape(dims_in, dims_out);
  const size_t n_mean = size_t(dims_in), n_matrix = size_t(dims_in) * size_t(dims_out);
  for (size_t i = 0; i < n_mean; ++i)
    if (!std::isfinite(mean[i]))
      throw Error(sqlstate::kDataException, "projection mean has a value that is not finite");
  for (size_t i = 0; i < n_matrix; ++i)
    if (!std::isfinite(matrix[i]))
      throw Error(sqlstate::kDataException, "projection matrix has a value that is not finite");
  std::vector<uint8_t> out(serialized_size(dims_in, dims_out));
  std::memcpy(out.data(), kMagic, 4);
  put_u32(out.data() + 4, kVersion);
  put_u32(out.data() + 8, uint32_t(dims_in));
  put_u32(out.data() + 12, uint32_t(dims_out));
  std::memcpy(out.data() + kHeaderBytes, mean, sizeof(float) * n_mean);
  std::memcpy(out.data() + kHeaderBytes + sizeof(float) * n_mean, matrix, sizeof(float) * n_matrix);
  return out;
}

View parse(const uint8_t *data, size_t len) {
  if (len < kHeaderBytes || std::memcmp(data, kMagic, 4) != 0)
    throw Error(sqlstate::kDataCorrupted, "projection data is malformed",
                "It does not start with the projection header.");
  const uint32_t version = get_u32(data + 4);
  if (version != kVersion)
    throw Error(sqlstate::kDataCorrupted,
                "projection data has format version " + std::to_string(version) +
                    ", this build reads version " + std::to_string(kVersion),
                {}, "Fit the projection again with lookalike.fit_projection().");
  const uint32_t din = get_u32(data + 8), dout = get_u32(data + 12);
  if (din < 1 || din > uint32_t(kMaxDims) || dout < 1 || dout > uint32_t(kMaxDims) ||
      len != serialized_size(int(din), int(dout)))
    throw Error(sqlstate::kDataCorrupted, "projection data is malformed",
                "Its shape " + std::to_string(din) + " x " + std::to_string(dout) +
                    " does not match its length of " + std::to_string(len) + " bytes.");
  View v;
  v.dims_in = int(din);
  v.dims_out = int(dout);
  v.mean = reinterpret_cast<const float *>(data + kHeaderBytes);
  v.matrix = v.mean + din;
  return v;
}

void apply(const View &p, const float *x, float *centred, float *y) {
  for (int i = 0; i < p.dims_in; ++i) centred[i] = x[i] - p.mean[i];
  for (int r = 0; r < p.dims_out; ++r)
    y[r] = kernels::dot(p.matrix + size_t(r) * size_t(p.dims_in), centred, size_t(p.dims_in));
}

}  // namespace lookalike::projection
