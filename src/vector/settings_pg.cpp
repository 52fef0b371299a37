#include "vector/settings_pg.hpp"

#include "common/pg.hpp"
#include "vector/exact_scan_pg.hpp"
#include "vector/kernels.hpp"

namespace lookalike::vector {
namespace {

namespace kernels = lookalike::kernels;

enum SimdChoice { kSimdAuto = -1 };
const struct config_enum_entry simd_options[] = {
    {"auto", kSimdAuto, false},
    {"portable", static_cast<int>(kernels::Isa::kScalar), false},
    {"avx2", static_cast<int>(kernels::Isa::kAvx2), false},
    {"avx512", static_cast<int>(kernels::Isa::kAvx512), false},
    {nullptr, 0, false}};
int simd_setting = kSimdAuto;

bool check_simd(int *newval, void **, GucSource) {
  if (*newval == kSimdAuto || kernels::cpu_supports(static_cast<kernels::Isa>(*newval)))
    return true;
  GUC_check_errdetail("This CPU does not support %s.",
                      kernels::isa_name(static_cast<kernels::Isa>(*newval)));
  return false;
}

void assign_simd(int newval, void *) {
  kernels::force_isa(newval == kSimdAuto ? kernels::best_isa() : static_cast<kernels::Isa>(newval));
}

}  // namespace

void define_settings() {
  DefineCustomEnumVariable(
      kSimdName, "Instruction set of the distance kernels.",
      "auto picks the best one this CPU supports (avx512, then avx2, then portable); the others "
      "exist for benchmarks and diagnosis.",
      &simd_setting, kSimdAuto, simd_options, PGC_USERSET, 0, check_simd, assign_simd, nullptr);
  DefineCustomBoolVariable(
      kExactScanName, "Lets the planner use lookalike's exact top-k scan.",
      "For ORDER BY <embedding column> <=>|<->|<#> <query> LIMIT k over one table: one pass that "
      "keeps the k nearest rows, instead of computing the distance for every row and sorting.",
      &exact_scan::enabled, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

}  // namespace lookalike::vector
