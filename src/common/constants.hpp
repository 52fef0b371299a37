// Limits shared by several features. Pure C++ (no PostgreSQL). Settings' names and defaults live
// beside their owners (image/settings.hpp, model/settings.hpp, vector/settings_pg.hpp,
// index/hnsw_pg.hpp, scaleout/).
#pragma once

#include <cstdint>

namespace lookalike {

// The embedding type.
inline constexpr int kMaxDims = 16000;  // same bound as pgvector's vector type

// Colour histograms (image/histogram.hpp).
inline constexpr int kDefaultHistogramBins = 8;
inline constexpr int kMaxHistogramBins = 32;  // 32^3 = 32768 > kMaxDims: checked at run time

}  // namespace lookalike
