// Training an image encoder from labelled images (lookalike.train_model, docs/training.md).
// Pure C++ (no PostgreSQL); LibTorch stays behind a pimpl so includers need no torch headers.
//
// The method (chosen on held-out style groups of the training pool, docs/training.md):
//   - the base model must be a torchvision-style export, forward(x) = flatten(avg_pool(
//     features(x))) with `features` a sequence of numbered blocks "0".."n-1" (the shared
//     MobileNetV2 files are); any other TorchScript encoder can still be trained with
//     trainable_blocks = 0 (a head on its frozen output);
//   - the first n - trainable_blocks blocks are frozen: each image goes through them once
//     (optimised for inference) and their output is kept in memory (float16);
//   - every epoch trains the last `trainable_blocks` blocks, a linear projection to
//     `embedding_dims` and, per label column, a cosine classifier (one learned proxy per class,
//     softmax of scale * cos(embedding, proxy); with proxies_per_class > 1 a class's cosine is the
//     soft maximum over several proxies) with AdamW, warm-up then cosine decay;
//   - the result is the base module (trained blocks in place) followed by the projection, or,
//     with pooled_blocks > 1, its blocks in a module that pools the last ones' outputs:
//     TorchScript that image_embedding() runs like any other model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lookalike::model {

struct TrainOptions {
  int epochs = 2;
  int embedding_dims = 256;
  int trainable_blocks = 2;
  int batch_size = 32;
  double learning_rate = 1e-3;       // projection and proxies
  double base_learning_rate = 3e-4;  // the trained blocks
  double weight_decay = 1e-4;
  double scale = 16.0;  // softmax scale of the cosine classifiers
  // Additive cosine margin (CosFace): the true class's cosine is lowered by `margin` in the loss,
  // so an image must be closer to its own class's proxy than to any other by at least that.
  double margin = 0.0;
  bool flip = true;  // each step flips half of the cached feature maps left-right
  // Randomly cropped views of each image cached besides the image itself (runtime.hpp's
  // random_crop); each step uses one of the 1 + augmented_views views of an image, drawn with
  // equal probability. 0: only the image (and no draw).
  int augmented_views = 0;
  // The embedding is projected from the average-pooled outputs of the last `pooled_blocks`
  // blocks, concatenated (1: the last block's only, the base model's own pooled output). With
  // trained blocks it may be at most trainable_blocks + 1 (the last frozen block's output is the
  // cached input); with none it must be 1.
  int pooled_blocks = 1;
  // Proxies per class in every label column's classifier (sub-centres): a class's cosine is the
  // soft maximum over its proxies' cosines (weights softmax(cos / 0.1), as in SoftTriple), so
  // a class whose products look several ways (usage "Casual", colour "Multi") need not pull them
  // all to one point. 1: one proxy per class.
  int proxies_per_class = 1;
  // Independently trained members sharing the cached frozen outputs: member m trains its own
  // copy of the trained blocks, projection and proxies with seed + m (its own order and flips);
  // the saved model runs the frozen blocks once and returns the members' L2-normalised
  // embeddings of embedding_dims / ensemble_members dimensions each, concatenated and scaled to
  // unit length (its cosine is the mean of theirs). Training takes ensemble_members times as long,
  // embedding about as much for the trained blocks. 1: a single model (no normalisation).
  int ensemble_members = 1;
  // Weights of the label columns' losses, in the training query's order (the loss is their
  // weighted sum): each finite, 0 to 100, at least one positive; empty: 1 for every column.
  std::vector<double> label_weights;
  // A batch normalisation of the projection's output before the loss (the "BNNeck" of Luo et
  // al. 2019): each dimension standardised by the batch's statistics, then scaled by a learned
  // factor (no shift). Outside training the running mean and variance stand in for the batch's,
  // and the saved model has the normalisation folded into its projection (no extra layer).
  bool bn_neck = false;
  uint64_t seed = 1;
};

// Throws Error 22023 naming the first option out of range.
void check_train_options(const TrainOptions &o);

struct EpochResult {
  int epoch = 0;
  double loss = 0;  // mean over the epoch's images of the summed per-label losses
  double seconds = 0;
  double cpu_seconds = 0;  // CPU time of the process (all threads) during the epoch
};

class Trainer {
 public:
  // base: the TorchScript bytes of the base encoder; heads: the number of label columns
  // (>= 1). Errors: 22023 not TorchScript, or trainable_blocks not less than the number of
  // blocks; 0A000 trainable_blocks > 0 on a module without a `features` sequence.
  Trainer(std::string_view base, const TrainOptions &options, int heads);
  ~Trainer();
  Trainer(const Trainer &) = delete;
  Trainer &operator=(const Trainer &) = delete;

  // Runs the frozen part over n preprocessed images, each as 1 + augmented_views items
  // (n x (1 + augmented_views) x 3 x height x width floats, NCHW, image by image as prepare_batch
  // writes them) and keeps its output with the labels (n x heads class indices, -1 = unknown,
  // ignored by that head).
  // Inference mode and flush-to-zero for the pass; the FPU state is restored afterwards.
  void add(const float *input, int n, int height, int width, const int32_t *labels);
  int64_t images() const;  // images, not views
  // Bytes held by the cached outputs and labels.
  int64_t cached_bytes() const;
  int heads() const;
  // The number of classes of each label column (each >= 2, else 22023), before the first epoch.
  // Labels of add() are class indices below these counts.
  void set_classes(std::vector<int> classes);

  // One pass over the cached images in a seeded random order. `between(step, steps)` is called
  // before every step and may throw (a cancel). Throws Error 22000 if the loss is not finite.
  EpochResult train_epoch(const std::function<void(int64_t, int64_t)> &between);

  // The trained encoder as TorchScript bytes: forward(x [N,3,H,W]) -> [N, embedding_dims].
  std::string save() const;

  // The state (defined in training.cpp only; public so that its helper functions there can
  // name it).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lookalike::model
