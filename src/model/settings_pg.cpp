#include "model/settings_pg.hpp"

#include "common/settings_pg.hpp"

namespace lookalike::model {
namespace {
char *default_model = nullptr;
int threads = kDefaultThreads;
int batch_size = kDefaultBatchSize;
int progress_interval = kDefaultProgressInterval;
}  // namespace

void define_settings() {
  DefineCustomStringVariable(kDefaultModelName,
                             "Model that image_embedding() uses when no model is named.",
                             "The name of a model in lookalike.models.", &default_model, "",
                             PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      kThreadsName, "Intra-op threads of the model runtime in each backend.",
      "Every backend that runs a model has its own pool; the default of 1 keeps N concurrent "
      "sessions on N cores. Raise it (up to the number of cores) for one session that embeds "
      "a whole table.",
      &threads, kDefaultThreads, 1, kMaxThreads, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      kBatchSizeName, "Images per forward pass in image_embeddings().",
      "Larger batches amortise the model's per-call cost; a cancel request waits for at most "
      "one batch.",
      &batch_size, kDefaultBatchSize, 1, kMaxBatchSize, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(kProgressIntervalName,
                          "Seconds between progress notices of image_embeddings().",
                          "0 turns the notices off.", &progress_interval, kDefaultProgressInterval,
                          0, 86400, PGC_USERSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
}

int threads_setting() { return int(pg::setting_int(kThreadsName, kDefaultThreads)); }
int batch_size_setting() { return int(pg::setting_int(kBatchSizeName, kDefaultBatchSize)); }
int64 progress_interval_setting() {
  return pg::setting_int(kProgressIntervalName, kDefaultProgressInterval);
}
const char *default_model_setting() {
  const char *v = GetConfigOption(kDefaultModelName, true, false);
  return v == nullptr || *v == '\0' ? nullptr : v;
}

}  // namespace lookalike::model
