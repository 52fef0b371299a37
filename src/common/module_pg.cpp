// The extension's shared library: module magic and _PG_init. _PG_init only defines settings
// (GUCs); it creates no thread and loads no model (models load lazily in each backend).
#include "common/constants.hpp"
#include "common/guard_pg.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace {
// Model runtime settings (issue #3); read by lookalike_model.so through GetConfigOption.
char *default_model = nullptr;
int model_threads = lookalike::kDefaultModelThreads;
int batch_size = lookalike::kDefaultBatchSize;
int progress_interval = lookalike::kDefaultProgressInterval;
}  // namespace

void _PG_init(void) {
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
  MarkGUCPrefixReserved("lookalike");
}
