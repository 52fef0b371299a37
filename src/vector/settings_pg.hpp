// The settings of the embedding type's features (GUCs): lookalike.simd (which distance kernels
// this backend uses) and lookalike.exact_scan (the exact top-k scan).
#pragma once

namespace lookalike::vector {

inline constexpr const char *kSimdName = "lookalike.simd";
inline constexpr const char *kExactScanName = "lookalike.exact_scan";

// Defines the settings above; called once, from _PG_init.
void define_settings();

}  // namespace lookalike::vector
