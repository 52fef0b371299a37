// Unit tests of the training core (src/model/training.cpp) on tiny synthetic data: two colours
// of noisy images, the shared MobileNetV2 at 32 x 32, a couple of epochs.
#include "model/training.hpp"

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "common/errors.hpp"
#include "model/runtime.hpp"

namespace lm = lookalike::model;

namespace {

const std::string kFeatures =
    std::string(LOOKALIKE_SHARED_DIR) + "/models/mobilenet_v2-imagenet-features.pt";
constexpr int kSize = 32;

std::string base_bytes() {
  std::vector<char> b = lm::read_file(kFeatures);
  return std::string(b.begin(), b.end());
}

// n images (NCHW, already normalised), label 0 = reddish, 1 = bluish, with noise.
void synthetic(int n, uint64_t seed, std::vector<float> &x, std::vector<int32_t> &y) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0, 0.6f);
  const size_t plane = size_t(kSize) * kSize;
  x.assign(size_t(n) * 3 * plane, 0);
  y.assign(size_t(n), 0);
  for (int i = 0; i < n; ++i) {
    int cls = i % 2;
    y[size_t(i)] = cls;
    for (int c = 0; c < 3; ++c) {
      float level = (cls == 0 ? (c == 0 ? 1.5f : -1.0f) : (c == 2 ? 1.5f : -1.0f));
      for (size_t k = 0; k < plane; ++k)
        x[(size_t(i) * 3 + size_t(c)) * plane + k] = level + noise(rng);
    }
  }
}

std::string sqlstate_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const lookalike::Error &e) {
    return e.sqlstate();
  }
  return "none";
}

lm::TrainOptions small_options() {
  lm::TrainOptions o;
  o.epochs = 3;
  o.embedding_dims = 16;
  o.trainable_blocks = 2;
  o.batch_size = 8;
  o.learning_rate = 1e-2;
  o.base_learning_rate = 1e-3;
  return o;
}

// One epoch of a two-class trainer over the images x (labels y); the epoch's loss, and the
// saved model in *model if given.
double one_epoch(const std::string &base, const lm::TrainOptions &o, const std::vector<float> &x,
                 const std::vector<int32_t> &y, std::string *model = nullptr) {
  lm::Trainer t(base, o, 1);
  t.set_classes({2});
  t.add(x.data(), int(y.size()), kSize, kSize, y.data());
  const double loss = t.train_epoch([](int64_t, int64_t) {}).loss;
  if (model) *model = t.save();
  return loss;
}

// The TorchScript save() returned, loaded as image_embedding() loads a stored model.
std::unique_ptr<lm::Model> load_saved(const std::string &saved) {
  return lm::Model::load_bytes("trained", std::vector<char>(saved.begin(), saved.end()), "");
}

// Every one of the rows of out (each d long) has unit length.
void expect_unit_rows(const std::vector<float> &out, int d) {
  for (size_t i = 0; i + size_t(d) <= out.size(); i += size_t(d)) {
    double norm = 0;
    for (size_t k = 0; k < size_t(d); ++k) norm += double(out[i + k]) * out[i + k];
    EXPECT_NEAR(norm, 1.0, 1e-5) << "row " << i / size_t(d);
  }
}

}  // namespace

TEST(ModelTraining, OptionsAreChecked) {
  // The SQLSTATE of check_train_options on the defaults changed by `set`.
  auto checked = [](const std::function<void(lm::TrainOptions &)> &set) {
    lm::TrainOptions o;
    set(o);
    return sqlstate_of([&] { lm::check_train_options(o); });
  };
  EXPECT_EQ(checked([](lm::TrainOptions &) {}), "none");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.epochs = 0; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.learning_rate = -1; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.batch_size = 1; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.augmented_views = 8; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.margin = 1; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.pooled_blocks = 0; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.proxies_per_class = 0; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.proxies_per_class = 17; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.proxies_per_class = 16; }), "none");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.ensemble_members = 0; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.ensemble_members = 9; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.ensemble_members = 8; }), "none");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.ensemble_members = 3; }), "22023");  // 256 / 3
  EXPECT_EQ(checked([](lm::TrainOptions &o) {
              o.ensemble_members = 2;
              o.embedding_dims = 2;  // one dimension per member
            }),
            "22023");
  // pooled_blocks is bounded by trainable_blocks + 1: blocks 16 (the cached input), 17 and 18
  // with two trained blocks; only the output itself with none.
  EXPECT_EQ(checked([](lm::TrainOptions &o) {
              o.trainable_blocks = 2;
              o.pooled_blocks = 3;
            }),
            "none");
  EXPECT_EQ(checked([](lm::TrainOptions &o) {
              o.trainable_blocks = 2;
              o.pooled_blocks = 4;
            }),
            "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) {
              o.trainable_blocks = 0;
              o.pooled_blocks = 2;
            }),
            "22023");
  // label weights: each in [0, 100] (not NaN), at least one positive
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.label_weights = {1, 0}; }), "none");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.label_weights = {0, 0}; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.label_weights = {1, -0.5}; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.label_weights = {1, 100.5}; }), "22023");
  EXPECT_EQ(checked([](lm::TrainOptions &o) { o.label_weights = {std::nan("")}; }), "22023");
}

TEST(ModelTraining, BadBaseAndLabels) {
  std::string base = base_bytes();
  lm::TrainOptions o = small_options();
  EXPECT_EQ(sqlstate_of([&] { lm::Trainer t("not torchscript", o, 1); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { lm::Trainer t(base, o, 0); }), "22023");  // no label column
  {
    lm::Trainer t(base, o, 2);
    EXPECT_EQ(sqlstate_of([&] { t.set_classes({2, 1}); }), "22023");  // a single class
  }
  o.trainable_blocks = 19;  // MobileNetV2 has 19 blocks: at least one must stay frozen
  EXPECT_EQ(sqlstate_of([&] { lm::Trainer t(base, o, 1); }), "22023");
  // An encoder without a `features` sequence can only get a head.
  std::vector<char> logits_file =
      lm::read_file(std::string(LOOKALIKE_SHARED_DIR) + "/models/mobilenet_v2-imagenet-logits.pt");
  std::string logits(logits_file.begin(), logits_file.end());
  o.trainable_blocks = 2;
  std::vector<float> x;
  std::vector<int32_t> y;
  synthetic(2, 1, x, y);
  // The logits model has `features` and `classifier`: its output is not pooled features.
  EXPECT_EQ(sqlstate_of([&] {
              lm::Trainer t(logits, o, 1);
              t.add(x.data(), 2, kSize, kSize, y.data());
            }),
            "0A000");
  lm::Trainer none(base, o, 1);
  none.set_classes({2});
  EXPECT_EQ(sqlstate_of([&] { none.train_epoch([](int64_t, int64_t) {}); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { (void)none.save(); }), "55000");
}

TEST(ModelTraining, LossFallsAndTheModelSeparatesTheClasses) {
  std::string base = base_bytes();
  lm::TrainOptions o = small_options();
  std::vector<float> x;
  std::vector<int32_t> y;
  synthetic(32, 7, x, y);
  lm::Trainer t(base, o, 1);
  t.set_classes({2});
  t.add(x.data(), 16, kSize, kSize, y.data());
  t.add(x.data() + size_t(16) * 3 * kSize * kSize, 16, kSize, kSize, y.data() + 16);
  EXPECT_EQ(t.images(), 32);
  EXPECT_EQ(t.cached_bytes(), 32 * (160 * 2 + 4));  // 160 x 1 x 1 float16 + a label each
  std::vector<double> losses;
  int64_t calls = 0;
  for (int e = 0; e < o.epochs; ++e)
    losses.push_back(t.train_epoch([&](int64_t, int64_t) { ++calls; }).loss);
  EXPECT_GT(calls, 3 * 4);
  EXPECT_LT(losses.back(), losses.front());
  std::string saved = t.save();
  std::unique_ptr<lm::Model> m = load_saved(saved);
  std::vector<float> test_x, out;
  std::vector<int32_t> test_y;
  synthetic(8, 99, test_x, test_y);
  int d = m->forward(test_x.data(), 8, kSize, kSize, out);
  ASSERT_EQ(d, 16);
  auto cos = [&](int a, int b) {
    double s = 0;
    for (int k = 0; k < d; ++k) s += double(out[size_t(a * d + k)]) * out[size_t(b * d + k)];
    return s;
  };
  // Same-colour images are closer than different-colour ones.
  double same = 0, other = 0;
  for (int a = 0; a < 8; ++a)
    for (int b = a + 1; b < 8; ++b)
      (test_y[size_t(a)] == test_y[size_t(b)] ? same : other) += cos(a, b);
  EXPECT_GT(same / 12, other / 16);
  // A bad sha256 is refused.
  EXPECT_EQ(sqlstate_of([&] {
              lm::Model::load_bytes("trained", std::vector<char>(saved.begin(), saved.end()),
                                    std::string(64, '0'));
            }),
            "XX001");
}

// One-epoch runs of small_options() on 16 synthetic images: what the tests below vary.
class ModelTrainingOneEpoch : public ::testing::Test {
 protected:
  ModelTrainingOneEpoch() : base(base_bytes()), o(small_options()) {
    o.epochs = 1;
    synthetic(16, 3, x, y);
  }
  std::string base;
  lm::TrainOptions o;
  std::vector<float> x;
  std::vector<int32_t> y;
};

TEST_F(ModelTrainingOneEpoch, DeterministicForASeed) {
  std::vector<double> loss;
  std::vector<std::string> models(2);
  for (int run = 0; run < 2; ++run) loss.push_back(one_epoch(base, o, x, y, &models[size_t(run)]));
  EXPECT_EQ(loss[0], loss[1]);
  EXPECT_EQ(lm::sha256_hex(models[0].data(), models[0].size()),
            lm::sha256_hex(models[1].data(), models[1].size()));
}

// The margin lowers the true class's cosine inside the loss only: with the same seed and data
// the first epoch's loss is higher, and a NULL label (-1) still counts for nothing.
TEST_F(ModelTrainingOneEpoch, MarginRaisesTheLoss) {
  y[3] = -1;
  std::vector<double> loss;
  for (double margin : {0.0, 0.3}) {
    o.margin = margin;
    loss.push_back(one_epoch(base, o, x, y));
  }
  EXPECT_TRUE(std::isfinite(loss[1]));
  EXPECT_GT(loss[1], loss[0] + 0.1);
}

// Label weights scale each label column's loss: one weight of 1 is the unweighted training (the
// same loss and model); a weight of 2 on the only column doubles the loss at every step, which
// AdamW's normalised steps turn into the same updates, so the epoch's loss doubles. A weight per
// column is required (22023 for the synthetic data's one column given two).
TEST_F(ModelTrainingOneEpoch, LabelWeightsScaleTheLoss) {
  std::string plain, ones;
  const double loss = one_epoch(base, o, x, y, &plain);
  o.label_weights = {1};
  EXPECT_EQ(one_epoch(base, o, x, y, &ones), loss);
  EXPECT_EQ(lm::sha256_hex(ones.data(), ones.size()), lm::sha256_hex(plain.data(), plain.size()));
  o.label_weights = {2};
  EXPECT_NEAR(one_epoch(base, o, x, y), 2 * loss, 1e-3 * loss);
  o.label_weights = {1, 1};
  EXPECT_EQ(sqlstate_of([&] { one_epoch(base, o, x, y); }), "22023");
}

// With pooled_blocks = 3 the projection reads the pooled outputs of blocks 16, 17 and 18
// (160 + 320 + 1280 channels). save() checks that the saved module reproduces the trainer's
// embedding of the first image (XX000 otherwise); the saved model runs like any other, and its
// embeddings differ from those of the same training with the last block's output only.
TEST_F(ModelTrainingOneEpoch, PooledBlocksAreSavedAsTrained) {
  std::vector<std::vector<float>> out(2);
  for (int pooled : {1, 3}) {
    o.pooled_blocks = pooled;
    std::string saved;
    EXPECT_TRUE(std::isfinite(one_epoch(base, o, x, y, &saved)));
    std::unique_ptr<lm::Model> m = load_saved(saved);
    ASSERT_EQ(m->forward(x.data(), 4, kSize, kSize, out[size_t(pooled / 2)]), 16);
  }
  double diff = 0;
  for (size_t k = 0; k < out[0].size(); ++k) diff += std::fabs(out[0][k] - out[1][k]);
  EXPECT_GT(diff, 1e-3);
}

// With three proxies per class a class's cosine is the soft maximum over its proxies: the same
// seed and data give another loss and another model (the option is not ignored), a NULL label
// still counts for nothing, and the saved model (which holds no proxies) embeds as before.
TEST_F(ModelTrainingOneEpoch, SeveralProxiesPerClass) {
  y[5] = -1;
  std::vector<double> loss;
  std::vector<std::string> saved(2);
  for (int k : {1, 3}) {
    o.proxies_per_class = k;
    loss.push_back(one_epoch(base, o, x, y, &saved[loss.size()]));
  }
  EXPECT_TRUE(std::isfinite(loss[1]));
  EXPECT_GT(std::fabs(loss[1] - loss[0]), 1e-4);
  EXPECT_NE(lm::sha256_hex(saved[0].data(), saved[0].size()),
            lm::sha256_hex(saved[1].data(), saved[1].size()));
  std::unique_ptr<lm::Model> m = load_saved(saved[1]);
  std::vector<float> out;
  ASSERT_EQ(m->forward(x.data(), 4, kSize, kSize, out), o.embedding_dims);
  for (float v : out) ASSERT_TRUE(std::isfinite(v));
}

// An ensemble of two members: member m trains as a single model of seed + m with
// embedding_dims / 2 dimensions would (the same loss, its own copy of the trained blocks), and
// the saved model returns both members' L2-normalised embeddings, concatenated and scaled to unit
// length. With the pooled outputs of three blocks as well (the saved module pools per member),
// and with heads only (no trained block: the members share the base model's output).
TEST_F(ModelTrainingOneEpoch, EnsembleMembersAreIndependentModels) {
  for (auto [blocks, pooled] : {std::pair{2, 1}, std::pair{2, 3}, std::pair{0, 1}}) {
    SCOPED_TRACE("trainable_blocks " + std::to_string(blocks) + ", pooled_blocks " +
                 std::to_string(pooled));
    o.trainable_blocks = blocks;
    o.pooled_blocks = pooled;
    o.seed = 5;
    std::vector<std::vector<float>> single(2);
    double single_loss = 0;
    for (int m = 0; m < 2; ++m) {
      lm::TrainOptions one = o;
      one.embedding_dims = o.embedding_dims / 2;
      one.seed = o.seed + uint64_t(m);
      std::string saved;
      single_loss += one_epoch(base, one, x, y, &saved) / 2;
      std::unique_ptr<lm::Model> model = load_saved(saved);
      ASSERT_EQ(model->forward(x.data(), 4, kSize, kSize, single[size_t(m)]), 8);
    }
    o.ensemble_members = 2;
    std::string saved;
    const double loss = one_epoch(base, o, x, y, &saved);
    EXPECT_NEAR(loss, single_loss, 1e-5 * (1 + single_loss));
    std::unique_ptr<lm::Model> model = load_saved(saved);
    std::vector<float> out;
    ASSERT_EQ(model->forward(x.data(), 4, kSize, kSize, out), 16);
    expect_unit_rows(out, 16);
    for (int i = 0; i < 4; ++i) {
      for (int m = 0; m < 2; ++m) {
        // member m's part is its single model's embedding, normalised, over sqrt(2)
        const float *e = single[size_t(m)].data() + i * 8;
        double len = 0;
        for (int k = 0; k < 8; ++k) len += double(e[k]) * e[k];
        len = std::sqrt(len);
        for (int k = 0; k < 8; ++k)
          EXPECT_NEAR(out[size_t(i * 16 + m * 8 + k)], e[k] / len / std::sqrt(2.0), 1e-4);
      }
    }
    o.ensemble_members = 1;
  }
}

// bn_neck normalises the projection's output before the loss: in every layout of the saved model
// (the base and one projection; pooled blocks; an ensemble's members) save() accepts the folded
// projection (it refuses, XX000, unless the saved module reproduces the trainer's embedding,
// which applies the running statistics separately), the loss and the embeddings are another
// model's than without it, and batches of five leave a last batch of one image (normalised with
// the running statistics) without a NaN.
TEST_F(ModelTrainingOneEpoch, BnNeckIsFoldedIntoTheSavedProjection) {
  o.batch_size = 5;
  for (auto [pooled, members] : {std::pair{1, 1}, std::pair{3, 1}, std::pair{3, 2}}) {
    SCOPED_TRACE("pooled_blocks " + std::to_string(pooled) + ", members " +
                 std::to_string(members));
    o.pooled_blocks = pooled;
    o.ensemble_members = members;
    std::vector<double> loss;
    std::vector<std::vector<float>> out(2);
    for (bool bn : {false, true}) {
      o.bn_neck = bn;
      std::string saved;
      loss.push_back(one_epoch(base, o, x, y, &saved));
      ASSERT_TRUE(std::isfinite(loss.back()));
      std::unique_ptr<lm::Model> m = load_saved(saved);
      ASSERT_EQ(m->forward(x.data(), 4, kSize, kSize, out[size_t(bn)]), 16);
      for (float v : out[size_t(bn)]) ASSERT_TRUE(std::isfinite(v));
    }
    EXPECT_NE(loss[0], loss[1]);
    double diff = 0;
    for (size_t k = 0; k < out[0].size(); ++k) diff += std::fabs(out[0][k] - out[1][k]);
    EXPECT_GT(diff, 1e-3);
  }
}

// A non-square input (input_width below input_size): the cached maps, the flips, the pooled
// blocks and an ensemble's members all follow its shape; save() checks the saved module against
// the trainer on the first (non-square) image, and the saved model embeds inputs of that shape.
TEST_F(ModelTrainingOneEpoch, NonSquareInput) {
  constexpr int kWidth = 24;
  const size_t plane = size_t(kSize) * kSize, narrow = size_t(kSize) * kWidth;
  std::vector<float> xn(x.size() / plane * narrow);
  for (size_t p = 0; p < x.size() / plane; ++p)  // each plane's first kWidth columns
    for (int row = 0; row < kSize; ++row)
      for (int col = 0; col < kWidth; ++col)
        xn[p * narrow + size_t(row) * kWidth + size_t(col)] =
            x[p * plane + size_t(row) * kSize + size_t(col)];
  o.pooled_blocks = 3;
  o.ensemble_members = 2;
  lm::Trainer t(base, o, 1);
  t.set_classes({2});
  t.add(xn.data(), int(y.size()), kSize, kWidth, y.data());
  EXPECT_TRUE(std::isfinite(t.train_epoch([](int64_t, int64_t) {}).loss));
  const std::string saved = t.save();
  std::unique_ptr<lm::Model> model = load_saved(saved);
  std::vector<float> out;
  ASSERT_EQ(model->forward(xn.data(), 4, kSize, kWidth, out), 16);
  expect_unit_rows(out, 16);
}

TEST(ModelTraining, CancelFromTheCallback) {
  std::string base = base_bytes();
  lm::TrainOptions o = small_options();
  std::vector<float> x;
  std::vector<int32_t> y;
  synthetic(16, 5, x, y);
  lm::Trainer t(base, o, 1);
  t.set_classes({2});
  t.add(x.data(), 16, kSize, kSize, y.data());
  EXPECT_EQ(sqlstate_of([&] {
              t.train_epoch([](int64_t step, int64_t) {
                if (step == 1) throw lookalike::Error("57014", "canceling statement");
              });
            }),
            "57014");
}
