// lookalike.so: module magic and _PG_init. _PG_init defines every setting of the extension
// (GUCs) -- lookalike_image.so and lookalike_model.so load this library first -- and registers
// the exact top-k scan (custom scan methods and a planner hook), nothing else: it creates no
// thread and loads no model (models load lazily in each backend).
#include "common/constants.hpp"
#include "common/guard_pg.hpp"
#include "index/hnsw_pg.hpp"
#include "scaleout/partition_topk_pg.hpp"
#include "vector/exact_scan_pg.hpp"
#include "vector/kernels.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace {

namespace kernels = lookalike::kernels;

// lookalike.simd: which distance kernels this backend uses.
enum SimdChoice { kSimdAuto = -1 };
const struct config_enum_entry simd_options[] = {
    {"auto", kSimdAuto, false},
    {"portable", static_cast<int>(kernels::Isa::kScalar), false},
    {"avx2", static_cast<int>(kernels::Isa::kAvx2), false},
    {"avx512", static_cast<int>(kernels::Isa::kAvx512), false},
    {nullptr, 0, false}};
int simd_setting = kSimdAuto;

kernels::Isa best_isa() {
  if (kernels::cpu_supports(kernels::Isa::kAvx512)) return kernels::Isa::kAvx512;
  if (kernels::cpu_supports(kernels::Isa::kAvx2)) return kernels::Isa::kAvx2;
  return kernels::Isa::kScalar;
}

bool check_simd(int *newval, void **, GucSource) {
  if (*newval == kSimdAuto || kernels::cpu_supports(static_cast<kernels::Isa>(*newval)))
    return true;
  GUC_check_errdetail("This CPU does not support %s.",
                      kernels::isa_name(static_cast<kernels::Isa>(*newval)));
  return false;
}

void assign_simd(int newval, void *) {
  kernels::force_isa(newval == kSimdAuto ? best_isa() : static_cast<kernels::Isa>(newval));
}

// lookalike.max_image_pixels: the decompression-bomb guard of the image functions
// (lookalike_image.so and lookalike_model.so read it with GetConfigOption). PGC_SUSET: changing a
// denial-of-service guard is a superuser's decision, or that of a role granted
// SET ON PARAMETER lookalike.max_image_pixels (PostgreSQL 15); see docs/image.md.
int max_image_pixels = static_cast<int>(lookalike::kDefaultMaxImagePixels);

// Model runtime settings (issue #3); read by lookalike_model.so through GetConfigOption.
char *default_model = nullptr;
int model_threads = lookalike::kDefaultModelThreads;
int batch_size = lookalike::kDefaultBatchSize;
int progress_interval = lookalike::kDefaultProgressInterval;

}  // namespace

void _PG_init(void) {
  DefineCustomEnumVariable(
      "lookalike.simd", "Instruction set of the distance kernels.",
      "auto picks the best one this CPU supports (avx512, then avx2, then portable); the others "
      "exist for benchmarks and diagnosis.",
      &simd_setting, kSimdAuto, simd_options, PGC_USERSET, 0, check_simd, assign_simd, nullptr);
  DefineCustomIntVariable(
      "lookalike.max_image_pixels",
      "Largest image, in pixels (width x height), that the image functions decode.",
      "Guards against decompression bombs: larger images are refused before decoding.",
      &max_image_pixels, static_cast<int>(lookalike::kDefaultMaxImagePixels), 1,
      static_cast<int>(lookalike::kMaxImagePixelsLimit), PGC_SUSET, 0, nullptr, nullptr, nullptr);
  // Index (src/index/): the lookalike_hnsw access method.
  lookalike::hnswpg::init_reloptions();
  DefineCustomIntVariable(
      "lookalike.ef_search", "Size of the candidate list of a lookalike_hnsw index scan.",
      "Larger finds more of the true nearest neighbours, slower.", &lookalike::hnswpg::ef_search,
      40, 1, 1000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("lookalike.max_scan_tuples",
                          "Most elements one lookalike_hnsw index scan visits.",
                          "Bounds the search that continues past ef_search when a WHERE clause "
                          "filters out rows; the scan ends when it is reached.",
                          &lookalike::hnswpg::max_scan_tuples, 20000, 1, INT_MAX, PGC_USERSET, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "lookalike.build_threads", "Threads that build a lookalike_hnsw graph in memory.",
      "0 (the default) means 1 + max_parallel_maintenance_workers. Never more than the CPUs "
      "online; threads exist only during CREATE INDEX / REINDEX.",
      &lookalike::hnswpg::build_threads, 0, 0, 64, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  // Exact top-k scan (src/vector/exact_scan_pg.cpp).
  DefineCustomBoolVariable(
      "lookalike.exact_scan", "Lets the planner use lookalike's exact top-k scan.",
      "For ORDER BY <embedding column> <=>|<->|<#> <query> LIMIT k over one table: one pass that "
      "keeps the k nearest rows, instead of computing the distance for every row and sorting.",
      &lookalike::exact_scan::enabled, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  // Model runtime (src/model/).
  DefineCustomStringVariable("lookalike.default_model",
                             "Model that image_embedding() uses when no model is named.",
                             "The name of a model in lookalike.models.", &default_model, "",
                             PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "lookalike.threads", "Intra-op threads of the model runtime in each backend.",
      "Every backend that runs a model has its own pool; the default of 1 keeps N concurrent "
      "sessions on N cores. Raise it (up to the number of cores) for one session that embeds "
      "a whole table.",
      &model_threads, lookalike::kDefaultModelThreads, 1, lookalike::kMaxModelThreads, PGC_USERSET,
      0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "lookalike.batch_size", "Images per forward pass in image_embeddings().",
      "Larger batches amortise the model's per-call cost; a cancel request waits for at most "
      "one batch.",
      &batch_size, lookalike::kDefaultBatchSize, 1, lookalike::kMaxBatchSize, PGC_USERSET, 0,
      nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "lookalike.progress_interval", "Seconds between progress notices of image_embeddings().",
      "0 turns the notices off.", &progress_interval, lookalike::kDefaultProgressInterval, 0, 86400,
      PGC_USERSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
  // Scale-out (src/scaleout/): top-k per partition, shards through postgres_fdw.
  lookalike::scaleout::init();
  MarkGUCPrefixReserved("lookalike");
  lookalike::exact_scan::register_planner_hook();
}
