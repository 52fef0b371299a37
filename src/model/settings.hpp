// The model runtime's settings: names, defaults and limits (pure C++; defined in
// settings_pg.cpp, read by lookalike_model.so).
#pragma once

namespace lookalike::model {

// lookalike.default_model: the model image_embedding() uses when none is named.
inline constexpr const char *kDefaultModelName = "lookalike.default_model";
// lookalike.threads: intra-op threads per backend; 1 never oversubscribes the cores.
inline constexpr const char *kThreadsName = "lookalike.threads";
inline constexpr int kDefaultThreads = 1;
inline constexpr int kMaxThreads = 256;
// lookalike.batch_size: images per forward pass in image_embeddings(); 4 is near the throughput
// of larger batches on a CPU with a short cancel latency (docs/model.md, "Batch size").
inline constexpr const char *kBatchSizeName = "lookalike.batch_size";
inline constexpr int kDefaultBatchSize = 4;
inline constexpr int kMaxBatchSize = 1024;
// lookalike.progress_interval: seconds between progress notices of image_embeddings().
inline constexpr const char *kProgressIntervalName = "lookalike.progress_interval";
inline constexpr int kDefaultProgressInterval = 10;

}  // namespace lookalike::model
