#include "model/settings_pg.hpp"

#include <algorithm>

#include "common/constants.hpp"
#include "common/settings_pg.hpp"

namespace lookalike::model {
namespace {
char *default_model = nullptr;
int threads = kDefaultThreads;
int batch_size = kDefaultBatchSize;
int max_batch_size = kDefaultMaxBatchSize;
int max_model_bytes = kDefaultMaxModelBytes;
int max_fit_dims = kDefaultMaxFitDims;
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
  // The resource bounds below are PGC_SUSET: a superuser's decision, or that of a role granted
  // SET ON PARAMETER (PostgreSQL 15).
  DefineCustomIntVariable(
      kMaxBatchSizeName, "Largest batch image_embeddings() runs, whatever batch_size is.",
      "Bounds the memory of one session's forward pass (several MB per image).", &max_batch_size,
      kDefaultMaxBatchSize, 1, kMaxBatchSize, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(kMaxModelBytesName, "Largest model file a backend reads.",
                          "Larger files are refused before they are read.", &max_model_bytes,
                          kDefaultMaxModelBytes, 1 << 20, INT_MAX, PGC_SUSET, GUC_UNIT_BYTE,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(kMaxFitDimsName, "Largest dimension lookalike.fit_projection() fits.",
                          "The fit holds a d x d covariance and its eigendecomposition costs d^3.",
                          &max_fit_dims, kDefaultMaxFitDims, 2, lookalike::kMaxDims, PGC_SUSET, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable(kProgressIntervalName,
                          "Seconds between progress notices of image_embeddings().",
                          "0 turns the notices off.", &progress_interval, kDefaultProgressInterval,
                          0, 86400, PGC_USERSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
}

int threads_setting() { return int(pg::setting_int(kThreadsName, kDefaultThreads)); }
int batch_size_setting() {
  return int(std::min(pg::setting_int(kBatchSizeName, kDefaultBatchSize),
                      pg::setting_int(kMaxBatchSizeName, kDefaultMaxBatchSize)));
}
int64 max_model_bytes_setting() {
  return pg::setting_int(kMaxModelBytesName, kDefaultMaxModelBytes);
}
int max_fit_dims_setting() { return int(pg::setting_int(kMaxFitDimsName, kDefaultMaxFitDims)); }
int64 progress_interval_setting() {
  return pg::setting_int(kProgressIntervalName, kDefaultProgressInterval);
}
const char *default_model_setting() {
  const char *v = GetConfigOption(kDefaultModelName, true, false);
  return v == nullptr || *v == '\0' ? nullptr : v;
}

}  // namespace lookalike::model
