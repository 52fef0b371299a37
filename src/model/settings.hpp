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
// lookalike.max_batch_size (superuser-only): the largest batch any role gets, whatever it sets
// lookalike.batch_size to; bounds the memory of one forward pass (several MB per image).
inline constexpr const char *kMaxBatchSizeName = "lookalike.max_batch_size";
inline constexpr int kDefaultMaxBatchSize = 32;
// lookalike.max_model_bytes (superuser-only): larger model files are refused before they are
// read (the default, 1 GB, is 70 times the MobileNetV2 file).
inline constexpr const char *kMaxModelBytesName = "lookalike.max_model_bytes";
inline constexpr int kDefaultMaxModelBytes = 1 << 30;
// lookalike.max_fit_dims (superuser-only): the largest dimension fit_projection() fits; the fit
// holds a d x d covariance in float64, twice during the eigendecomposition (64 MB at 2,048 dims,
// 4 GB at 16,000), and the eigendecomposition costs d^3.
inline constexpr const char *kMaxFitDimsName = "lookalike.max_fit_dims";
inline constexpr int kDefaultMaxFitDims = 2048;
// lookalike.progress_interval: seconds between progress notices of image_embeddings().
inline constexpr const char *kProgressIntervalName = "lookalike.progress_interval";
inline constexpr int kDefaultProgressInterval = 10;

}  // namespace lookalike::model
