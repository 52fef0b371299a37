#include "model/training.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <sstream>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "common/errors.hpp"
#include "model/runtime.hpp"
#include "model/torchscript_load.hpp"

namespace lookalike::model {
namespace ss = lookalike::sqlstate;

void check_train_options(const TrainOptions &o) {
  auto bad = [](const std::string &what, const std::string &range) {
    throw Error(ss::kInvalidParameterValue, what + " is out of range", "It must be " + range + ".");
  };
  if (o.epochs < 1 || o.epochs > 1000) bad("epochs", "between 1 and 1000");
  if (o.embedding_dims < 2 || o.embedding_dims > 4096) bad("embedding_dims", "between 2 and 4096");
  if (o.trainable_blocks < 0 || o.trainable_blocks > 64)
    bad("trainable_blocks", "between 0 and 64");
  if (o.batch_size < 2 || o.batch_size > 1024) bad("batch_size", "between 2 and 1024");
  if (!(o.learning_rate > 0 && o.learning_rate <= 1)) bad("learning_rate", "in (0, 1]");
  if (!(o.base_learning_rate >= 0 && o.base_learning_rate <= 1))
    bad("base_learning_rate", "in [0, 1]");
  if (!(o.weight_decay >= 0 && o.weight_decay <= 1)) bad("weight_decay", "in [0, 1]");
  if (!(o.scale > 0 && o.scale <= 100)) bad("scale", "in (0, 100]");
  if (o.augmented_views < 0 || o.augmented_views > 7) bad("augmented_views", "between 0 and 7");
  if (!(o.margin >= 0 && o.margin < 1)) bad("margin", "in [0, 1)");
  if (o.proxies_per_class < 1 || o.proxies_per_class > 16)
    bad("proxies_per_class", "between 1 and 16");
  if (o.ensemble_members < 1 || o.ensemble_members > 8) bad("ensemble_members", "between 1 and 8");
  if (o.embedding_dims % o.ensemble_members != 0 || o.embedding_dims / o.ensemble_members < 2)
    bad("embedding_dims", "a multiple of ensemble_members (" + std::to_string(o.ensemble_members) +
                              "), at least 2 per member");
  if (o.pooled_blocks < 1 || o.pooled_blocks > o.trainable_blocks + 1)
    bad("pooled_blocks",
        "between 1 and trainable_blocks + 1 (" + std::to_string(o.trainable_blocks + 1) + ")");
  bool any_positive = false;
  for (double w : o.label_weights) {
    if (!(w >= 0 && w <= 100)) bad("a label weight", "in [0, 100]");
    any_positive = any_positive || w > 0;
  }
  if (!o.label_weights.empty() && !any_positive)
    bad("label_weights", "positive for at least one label column");
}

namespace {

// The learning rate at step t of T: linear warm-up over the first 10 % of the steps, then
// cosine decay to zero.
double schedule(int64_t t, int64_t total) {
  int64_t warm = std::max<int64_t>(1, total / 10);
  if (t < warm) return double(t + 1) / double(warm);
  double p = double(t - warm) / double(std::max<int64_t>(1, total - warm));
  return 0.5 * (1 + std::cos(M_PI * std::min(1.0, p)));
}

torch::jit::Module new_module(const std::string &name) {
  torch::jit::Module m(c10::QualifiedName("__torch__.lookalike." + name));
  m.register_attribute("training", c10::BoolType::get(), false);
  return m;
}

std::string first_line(const std::exception &e) {
  std::string what = e.what();
  size_t start = what.find_first_not_of("\n ");
  what = start == std::string::npos ? std::string() : what.substr(start);
  what = what.substr(0, what.find('\n'));
  if (what.size() > 300) what = what.substr(0, 300) + "...";
  return what;
}

}  // namespace

// bn_neck's batch normalisation: torch.nn.BatchNorm1d's epsilon and momentum.
constexpr double kBnEpsilon = 1e-5;
constexpr double kBnMomentum = 0.1;

// One member of the ensemble (ensemble_members; one by default): its trained blocks, projection,
// proxies, optimiser and random generator (order, flips, views). Member 0 trains the base module's
// own blocks in place, the others copies of them taken before training.
struct Member {
  std::vector<torch::jit::Module> blocks;  // the trained blocks, in order
  at::Tensor weight, bias;                 // projection
  std::vector<at::Tensor> proxies;         // one [classes x proxies_per_class, dims] per head
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<double> base_lr;  // per parameter group
  std::mt19937_64 rng;
  int64_t step = 0;

  // The projection's input for cached outputs x: x itself without trained blocks, else the
  // average-pooled outputs of the last `pooled_blocks` blocks (the cached input counting as the
  // last frozen block's), concatenated.
  at::Tensor pooled(at::Tensor x, int pooled_blocks) {
    if (blocks.empty()) return x;
    const size_t first_pooled = blocks.size() + 1 - size_t(pooled_blocks);
    std::vector<at::Tensor> parts;
    if (first_pooled == 0) parts.push_back(x.mean({2, 3}));
    for (size_t i = 0; i < blocks.size(); ++i) {
      x = blocks[i].forward({x}).toTensor();
      if (i + 1 >= first_pooled) parts.push_back(x.mean({2, 3}));
    }
    return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  }

  at::Tensor projected(at::Tensor x, int pooled_blocks) {
    return torch::addmm(bias, pooled(std::move(x), pooled_blocks), weight.t());
  }

  // bn_neck: the batch normalisation after the projection (a learned scale per dimension, no
  // shift; running mean and variance for everything but the loss); undefined without it.
  at::Tensor bn_gamma, bn_mean, bn_var;
  at::Tensor bn_scale() const { return bn_gamma / torch::sqrt(bn_var + kBnEpsilon); }

  // The embedding outside the loss: the projection, normalised with the running statistics.
  at::Tensor embed(at::Tensor x, int pooled_blocks) {
    at::Tensor e = projected(std::move(x), pooled_blocks);
    if (bn_gamma.defined()) e = (e - bn_mean) * bn_scale();
    return e;
  }
  // The projection as saved: with bn_neck the normalisation folded into it (an affine map of an
  // affine map), so the saved module needs no normalisation of its own.
  at::Tensor saved_weight() const {
    return bn_gamma.defined() ? weight * bn_scale().unsqueeze(1) : weight;
  }
  at::Tensor saved_bias() const {
    return bn_gamma.defined() ? (bias - bn_mean) * bn_scale() : bias;
  }
};

struct Trainer::Impl {
  TrainOptions opt;
  int heads = 0;
  std::vector<int> classes;
  torch::jit::Module base;                 // trained in place (its last blocks: member 0's)
  torch::jit::Module prefix;               // the frozen blocks, optimised for inference
  std::vector<torch::jit::Module> frozen;  // the frozen blocks as they are (for save())
  std::vector<Member> members;             // ensemble_members of them
  at::Tensor first_input;                  // the first image added (save()'s check)
  bool checked = false;
  // float16 chunks of frozen outputs, one per add(); chunk_start[i] is the first row of chunk i
  // (a row per view: image i's views are rows i * (1 + augmented_views) onwards). Batches gather
  // their rows from the chunks, which are never concatenated: one copy of the cache is all the
  // memory it takes (concatenating them at the first epoch had put a second copy beside it for a
  // moment: 4.06 against 3.45 GB peak with the demo's 1.8 GB cache). The members share it.
  std::vector<at::Tensor> cache;
  std::vector<int64_t> chunk_start;
  std::vector<int32_t> labels;  // images x heads
  int64_t n = 0;
  std::vector<int64_t> item_shape;  // shape of one cached output
  int epoch = 0;

  // The trained embedding of cached outputs x: the single member's projection, or with several
  // members their L2-normalised projections concatenated and scaled by 1 / sqrt(members) (unit
  // length: its cosine is the mean of the members' cosines). save() writes the same.
  at::Tensor embed(const at::Tensor &x) {
    if (members.size() == 1) return members[0].embed(x, opt.pooled_blocks);
    std::vector<at::Tensor> parts;
    for (auto &m : members) {
      at::Tensor e = m.embed(x, opt.pooled_blocks);
      // as F::normalize and the saved module's torch.clamp_min(torch.norm(...), 1e-12)
      parts.push_back(e / e.norm(2, {1}, true).clamp_min(1e-12));
    }
    return torch::cat(parts, 1) * (1.0 / std::sqrt(double(members.size())));
  }
};

Trainer::Trainer(std::string_view bytes, const TrainOptions &options, int heads)
    : impl_(std::make_unique<Impl>()) {
  check_train_options(options);
  auto &I = *impl_;
  I.opt = options;
  if (heads < 1 || heads > 64)
    throw Error(ss::kInvalidParameterValue, "training needs 1 to 64 label columns");
  if (!options.label_weights.empty() && int(options.label_weights.size()) != heads)
    throw Error(ss::kInvalidParameterValue,
                "label_weights has " + std::to_string(options.label_weights.size()) +
                    " elements, the training query has " + std::to_string(heads) + " label columns",
                "Give one weight per label column, in the query's order, or NULL for 1 each.");
  I.heads = heads;
  I.members.resize(size_t(options.ensemble_members));
  try {
    I.base = load_torchscript(bytes.data(), bytes.size());
  } catch (const std::exception &e) {
    throw Error(ss::kInvalidParameterValue, "could not load the base model as TorchScript",
                first_line(e));
  }
  I.base.eval();
  for (auto p : I.base.parameters()) p.set_requires_grad(false);
  torch::jit::Module frozen = new_module("FrozenPart");
  std::string src = "def forward(self, x):\n";
  if (options.trainable_blocks == 0) {
    frozen.register_module("base", I.base);
    src += "    return self.base.forward(x)\n";
  } else {
    c10::optional<torch::jit::Module> features;
    for (const auto &child : I.base.named_children())
      if (child.name == "features") features = child.value;
    std::vector<torch::jit::Module> seq;
    if (features) {
      for (const auto &child : features->named_children()) {
        if (child.name != std::to_string(seq.size())) {
          seq.clear();
          break;
        }
        seq.push_back(child.value);
      }
    }
    if (seq.empty())
      throw Error(ss::kFeatureNotSupported,
                  "the base model has no `features` sequence of numbered blocks",
                  "Only torchvision-style encoders (forward = pooled features(x)) can have "
                  "blocks trained.",
                  "Use trainable_blocks => 0 to train a head on the model's output.");
    if (size_t(options.trainable_blocks) >= seq.size())
      throw Error(ss::kInvalidParameterValue,
                  "trainable_blocks must be less than the base model's " +
                      std::to_string(seq.size()) + " blocks");
    size_t first = seq.size() - size_t(options.trainable_blocks);
    for (size_t i = 0; i < first; ++i) {
      I.frozen.push_back(seq[i]);
      frozen.register_module("b" + std::to_string(i), seq[i]);
      src += "    x = self.b" + std::to_string(i) + ".forward(x)\n";
    }
    src += "    return x\n";
    for (size_t i = first; i < seq.size(); ++i) {
      for (auto p : seq[i].parameters()) p.set_requires_grad(true);
      I.members[0].blocks.push_back(seq[i]);
      // the other members train deep copies, taken before any step (without autograd, so that
      // their parameters are leaves)
      for (size_t m = 1; m < I.members.size(); ++m) {
        torch::jit::Module copy;
        {
          torch::NoGradGuard no_grad;
          copy = seq[i].clone();
        }
        for (auto p : copy.parameters()) p.set_requires_grad(true);
        I.members[m].blocks.push_back(copy);
      }
    }
  }
  try {
    frozen.define(src);
    frozen.eval();
    I.prefix = torch::jit::optimize_for_inference(frozen);
  } catch (const std::exception &e) {
    throw Error(ss::kExternalRoutineException,
                "could not prepare the frozen part of the model: " + first_line(e), first_line(e));
  }
}

Trainer::~Trainer() = default;

int64_t Trainer::images() const { return impl_->n; }
int Trainer::heads() const { return impl_->heads; }

void Trainer::set_classes(std::vector<int> classes) {
  if (int(classes.size()) != impl_->heads)
    throw Error(ss::kInternalError, "set_classes: wrong number of label columns");
  for (size_t h = 0; h < classes.size(); ++h)
    if (classes[h] < 2)
      throw Error(ss::kInvalidParameterValue,
                  "label column " + std::to_string(h + 1) + " has " + std::to_string(classes[h]) +
                      " class" + (classes[h] == 1 ? "" : "es"),
                  "Every label column needs at least two distinct non-null values.");
  impl_->classes = std::move(classes);
}

int64_t Trainer::cached_bytes() const {
  int64_t b = int64_t(impl_->labels.size() * sizeof(int32_t));
  for (const auto &t : impl_->cache) b += t.numel() * int64_t(t.element_size());
  return b;
}

void Trainer::add(const float *input, int n, int height, int width, const int32_t *labels) {
  auto &I = *impl_;
  if (n <= 0) return;
  const int64_t items = int64_t(n) * (1 + I.opt.augmented_views);
  at::Tensor x = torch::from_blob(const_cast<float *>(input), {items, 3, height, width},
                                  torch::TensorOptions().dtype(torch::kFloat32));
  at::Tensor y;
  {
    c10::InferenceMode guard;
    FlushToZero ftz;
    try {
      y = I.prefix.forward({x}).toTensor();
      if (y.is_mkldnn()) y = y.to_dense();
      if (!I.checked && !I.members[0].blocks.empty()) {
        // The split must reproduce the base model: blocks, then global average pooling.
        at::Tensor z = y.slice(0, 0, 1).to(torch::kFloat32);
        for (auto &b : I.members[0].blocks) z = b.forward({z}).toTensor();
        z = z.mean({2, 3});
        at::Tensor ref = I.base.forward({x.slice(0, 0, 1)}).toTensor();
        if (ref.dim() != 2 || !ref.sizes().equals(z.sizes()) ||
            (ref - z).abs().max().item<double>() > 1e-3 * (1 + ref.abs().max().item<double>()))
          throw Error(ss::kFeatureNotSupported,
                      "the base model's output is not the average-pooled output of its blocks", {},
                      "Use trainable_blocks => 0 to train a head on the model's output.");
      }
    } catch (const Error &) {
      throw;
    } catch (const std::exception &e) {
      throw Error(ss::kExternalRoutineException,
                  "the base model's forward pass failed: " + first_line(e));
    }
  }
  if (I.members[0].blocks.empty() && y.dim() != 2)
    throw Error(ss::kExternalRoutineException, "the base model's output is not [N, D]");
  if (!I.checked) {
    I.item_shape.assign(y.sizes().begin() + 1, y.sizes().end());
    I.first_input = x.slice(0, 0, 1).clone();
    I.checked = true;
  }
  I.chunk_start.push_back(I.n * (1 + I.opt.augmented_views));
  I.cache.push_back(y.to(torch::kHalf).contiguous());
  I.labels.insert(I.labels.end(), labels, labels + size_t(n) * size_t(I.heads));
  I.n += n;
}

namespace {

// The first epoch's set-up of member m: its projection and per-label proxies (seeded by seed + m,
// as is its generator: member m draws what a single model of that seed would), and AdamW over
// them (learning_rate) and its trained blocks (base_learning_rate).
void init_member(Trainer::Impl &I, size_t m) {
  Member &M = I.members[m];
  const uint64_t seed = I.opt.seed + m;
  M.rng.seed(seed);
  torch::manual_seed(seed);
  const int64_t dims = I.opt.embedding_dims / I.opt.ensemble_members;
  const int64_t in_dims =
      M.pooled(I.cache.front().slice(0, 0, 1).to(torch::kFloat32), I.opt.pooled_blocks).size(1);
  const double bound = 1.0 / std::sqrt(double(in_dims));
  M.weight = (torch::rand({dims, in_dims}) * 2 - 1) * bound;
  M.bias = torch::zeros({dims});
  M.weight.set_requires_grad(true);
  M.bias.set_requires_grad(true);
  std::vector<at::Tensor> head{M.weight, M.bias};
  if (I.opt.bn_neck) {
    M.bn_gamma = torch::ones({dims}).set_requires_grad(true);
    M.bn_mean = torch::zeros({dims});
    M.bn_var = torch::ones({dims});
    head.push_back(M.bn_gamma);
  }
  for (size_t h = 0; h < I.classes.size(); ++h) {
    M.proxies.push_back(
        (torch::randn({int64_t(I.classes[h]) * I.opt.proxies_per_class, dims}) * 0.01)
            .set_requires_grad(true));
    head.push_back(M.proxies.back());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      head, std::make_unique<torch::optim::AdamWOptions>(
                torch::optim::AdamWOptions(I.opt.learning_rate).weight_decay(I.opt.weight_decay)));
  M.base_lr.push_back(I.opt.learning_rate);
  std::vector<at::Tensor> trained;
  for (auto &b : M.blocks)
    for (auto p : b.parameters()) trained.push_back(p);
  if (!trained.empty()) {
    groups.emplace_back(
        trained,
        std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(I.opt.base_learning_rate).weight_decay(I.opt.weight_decay)));
    M.base_lr.push_back(I.opt.base_learning_rate);
  }
  M.optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions());
}

// A seeded order of the n cached images (Fisher-Yates with our own generator: the same on every
// platform).
std::vector<int64_t> shuffled_order(const Trainer::Impl &I, Member &M) {
  std::vector<int64_t> order(size_t(I.n));
  for (int64_t i = 0; i < I.n; ++i) order[size_t(i)] = i;
  for (int64_t i = I.n - 1; i > 0; --i) {
    int64_t j = int64_t(M.rng() % uint64_t(i + 1));
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  return order;
}

// The cached inputs of the images idx, as float32: one of each image's 1 + augmented_views
// views (drawn with equal probability when there are several), each mirrored left-right with
// probability 1/2 when the blocks are trained (the seeded generator decides both). Feature maps
// are handed to the blocks channels-last (NHWC): oneDNN's convolutions and their backward passes
// then need no layout reorders, which made a training step about 20 % cheaper
// (docs/training.md, speed).
at::Tensor batch_input(const Trainer::Impl &I, Member &M, const std::vector<int64_t> &idx) {
  const int64_t b = int64_t(idx.size());
  const int64_t views = 1 + I.opt.augmented_views;
  std::vector<int64_t> rows(idx);
  if (views > 1)
    for (auto &r : rows) r = r * views + int64_t(M.rng() % uint64_t(views));
  std::vector<at::Tensor> picked;
  picked.reserve(rows.size());
  for (int64_t r : rows) {
    const auto next = std::upper_bound(I.chunk_start.begin(), I.chunk_start.end(), r);
    const size_t c = size_t(next - I.chunk_start.begin()) - 1;
    picked.push_back(I.cache[c].select(0, r - I.chunk_start[c]));
  }
  at::Tensor x = torch::stack(picked).to(torch::kFloat32);
  if (I.opt.flip && !M.blocks.empty()) {
    std::vector<int64_t> f(static_cast<size_t>(b));
    for (auto &v : f) v = int64_t(M.rng() & 1);
    at::Tensor mask = torch::tensor(f, torch::kLong).to(torch::kBool).view({b, 1, 1, 1});
    x = torch::where(mask, x.flip({3}), x);
  }
  if (x.dim() == 4) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  return x;
}

// The class numbers of the images idx, one tensor per label column (-1: NULL label).
std::vector<at::Tensor> batch_labels(const Trainer::Impl &I, const std::vector<int64_t> &idx) {
  const int H = int(I.classes.size());
  std::vector<at::Tensor> ys;
  for (int h = 0; h < H; ++h) {
    std::vector<int64_t> y(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) y[i] = I.labels[size_t(idx[i] * H + h)];
    ys.push_back(torch::tensor(y, torch::kLong));
  }
  return ys;
}

// The temperature of the soft maximum over a class's proxies (proxies_per_class > 1): SoftTriple's
// 0.1 (Qian et al., ICCV 2019), not tuned.
constexpr double kSubCentreTemperature = 0.1;

// The loss of one batch (with autograd on): the sum over label columns (weighted by
// label_weights, if given) of the cross-entropy of the scaled cosine between the normalised
// embedding and the normalised class proxies (with several proxies per class, the soft maximum
// of their cosines), the true class's cosine lowered by the margin.
at::Tensor batch_loss(const Trainer::Impl &I, Member &M, const at::Tensor &x,
                      const std::vector<at::Tensor> &ys) {
  namespace F = torch::nn::functional;
  at::Tensor e;
  if (M.bn_gamma.defined() && x.size(0) > 1) {
    // bn_neck: normalised with the batch's own statistics, which update the running ones (as
    // BatchNorm1d in training mode); a batch of one image uses the running ones
    at::Tensor raw = M.projected(x, I.opt.pooled_blocks);
    at::Tensor mean = raw.mean(0), var = raw.var(0, false);
    {
      torch::NoGradGuard no_grad;
      M.bn_mean.mul_(1 - kBnMomentum).add_(mean.detach() * kBnMomentum);
      M.bn_var.mul_(1 - kBnMomentum).add_(raw.detach().var(0, true) * kBnMomentum);
    }
    e = (raw - mean) / torch::sqrt(var + kBnEpsilon) * M.bn_gamma;
  } else {
    e = M.embed(x, I.opt.pooled_blocks);
  }
  e = F::normalize(e, F::NormalizeFuncOptions().dim(1));
  at::Tensor loss = torch::zeros({});
  for (size_t h = 0; h < ys.size(); ++h) {
    if ((ys[h] >= 0).sum().item<int64_t>() == 0) continue;
    at::Tensor p = F::normalize(M.proxies[h], F::NormalizeFuncOptions().dim(1));
    at::Tensor cos = torch::mm(e, p.t());
    if (I.opt.proxies_per_class > 1) {
      // class c's proxies are rows c * k .. c * k + k - 1: their cosines' soft maximum
      cos = cos.view({cos.size(0), -1, I.opt.proxies_per_class});
      cos = (torch::softmax(cos / kSubCentreTemperature, 2) * cos).sum(2);
    }
    // A NULL label's row is lowered at class 0: cross_entropy ignores that row anyway.
    if (I.opt.margin > 0)
      cos = cos - torch::zeros_like(cos).scatter_(1, ys[h].clamp_min(0).unsqueeze(1), I.opt.margin);
    at::Tensor logits = I.opt.scale * cos;
    at::Tensor ce = F::cross_entropy(logits, ys[h], F::CrossEntropyFuncOptions().ignore_index(-1));
    loss = loss + (I.opt.label_weights.empty() ? ce : ce * I.opt.label_weights[size_t(h)]);
  }
  return loss;
}

}  // namespace

EpochResult Trainer::train_epoch(const std::function<void(int64_t, int64_t)> &between) {
  auto &I = *impl_;
  if (I.n == 0) throw Error(ss::kInvalidParameterValue, "no training images");
  if (int(I.classes.size()) != I.heads)
    throw Error(ss::kInternalError, "train_epoch: set_classes was not called");
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  const int64_t steps_per_epoch = (I.n + I.opt.batch_size - 1) / I.opt.batch_size;
  const int64_t total_steps = steps_per_epoch * I.opt.epochs;
  const int64_t members = int64_t(I.members.size());
  torch::NoGradGuard no_grad_outside;  // enabled again below for the step itself
  double loss_sum = 0;
  int64_t counted = 0;
  FlushToZero ftz;
  // The members one after the other, each over the whole epoch in its own order.
  for (int64_t m = 0; m < members; ++m) {
    Member &M = I.members[size_t(m)];
    if (!M.optimizer) init_member(I, size_t(m));
    const std::vector<int64_t> order = shuffled_order(I, M);
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const int64_t done = m * steps_per_epoch + s, steps = members * steps_per_epoch;
      between(done, steps);
      const int64_t lo = s * I.opt.batch_size, hi = std::min(I.n, lo + I.opt.batch_size);
      const std::vector<int64_t> idx(order.begin() + lo, order.begin() + hi);
      at::Tensor x = batch_input(I, M, idx);
      std::vector<at::Tensor> ys = batch_labels(I, idx);
      const double f = schedule(M.step, total_steps);
      for (size_t g = 0; g < M.optimizer->param_groups().size(); ++g)
        static_cast<torch::optim::AdamWOptions &>(M.optimizer->param_groups()[g].options())
            .lr(M.base_lr[g] * f);
      at::Tensor loss;
      {
        torch::AutoGradMode grad(true);
        loss = batch_loss(I, M, x, ys);
        M.optimizer->zero_grad();
        between(done, steps);
        loss.backward();
      }
      between(done, steps);
      M.optimizer->step();
      ++M.step;
      double l = loss.item<double>();
      if (!std::isfinite(l))
        throw Error(ss::kDataException, "the training loss is not finite",
                    "Try a smaller learning_rate.");
      loss_sum += l * double(hi - lo);
      counted += hi - lo;
    }
  }
  ++I.epoch;
  EpochResult r;
  r.epoch = I.epoch;
  r.loss = counted > 0 ? loss_sum / double(counted) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cpu_seconds = process_cpu_seconds() - cpu0;
  return r;
}

namespace {

// The source of the saved forward(), registering in `out` the modules and parameters it names.
// One member reading the last block only: the base module (its trained blocks in place), then
// the projection. Otherwise the frozen blocks (or, without trained blocks, the base module) once,
// then each member's trained blocks, the average-pooled outputs of the last pooled_blocks
// concatenated (as Member::pooled does on the cached outputs) and its projection; several
// members' embeddings are L2-normalised, concatenated and scaled by 1 / sqrt(members)
// (Impl::embed).
std::string saved_source(const Trainer::Impl &I, torch::jit::Module &out) {
  const bool single = I.members.size() == 1;
  std::string src = "def forward(self, x):\n";
  if (single && I.opt.pooled_blocks == 1) {
    out.register_module("base", I.base);
    out.register_parameter("proj_weight", I.members[0].saved_weight().detach().clone(), false);
    out.register_parameter("proj_bias", I.members[0].saved_bias().detach().clone(), false);
    return src + "    f = self.base.forward(x)\n" +
           "    return torch.addmm(self.proj_bias, f, self.proj_weight.t())\n";
  }
  if (I.members[0].blocks.empty()) {
    out.register_module("base", I.base);
    src += "    x = self.base.forward(x)\n";
  }
  for (size_t i = 0; i < I.frozen.size(); ++i) {
    out.register_module("b" + std::to_string(i), I.frozen[i]);
    src += "    x = self.b" + std::to_string(i) + ".forward(x)\n";
  }
  std::string embeddings;
  for (size_t m = 0; m < I.members.size(); ++m) {
    const Member &M = I.members[m];
    const std::string tag = "m" + std::to_string(m);
    std::string parts;
    if (M.blocks.empty()) {
      parts = "x";
    } else {
      const size_t first_pooled = M.blocks.size() + 1 - size_t(I.opt.pooled_blocks);
      src += "    y = x\n";
      if (first_pooled == 0) {
        src += "    " + tag + "_in = torch.mean(y, [2, 3])\n";
        parts = tag + "_in";
      }
      for (size_t i = 0; i < M.blocks.size(); ++i) {
        const std::string b = tag + "_b" + std::to_string(I.frozen.size() + i);
        out.register_module(b, M.blocks[i]);
        src += "    y = self." + b + ".forward(y)\n";
        if (i + 1 >= first_pooled) {
          src += "    " + b + "_p = torch.mean(y, [2, 3])\n";
          parts += (parts.empty() ? "" : ", ") + b + "_p";
        }
      }
      parts = "torch.cat([" + parts + "], 1)";
    }
    out.register_parameter(tag + "_weight", M.saved_weight().detach().clone(), false);
    out.register_parameter(tag + "_bias", M.saved_bias().detach().clone(), false);
    src += "    " + tag + " = torch.addmm(self." + tag + "_bias, " + parts + ", self." + tag +
           "_weight.t())\n";
    if (single) return src + "    return " + tag + "\n";
    src += "    " + tag + " = " + tag + " / torch.clamp_min(torch.norm(" + tag +
           ", 2, [1], True), 1e-12)\n";
    embeddings += (embeddings.empty() ? "" : ", ") + tag;
  }
  std::ostringstream scale;
  scale.precision(17);
  scale << 1.0 / std::sqrt(double(I.members.size()));
  return src + "    return torch.cat([" + embeddings + "], 1) * " + scale.str() + "\n";
}

void set_trained_blocks_grad(Trainer::Impl &I, bool on) {
  for (auto &m : I.members)
    for (auto &b : m.blocks)
      for (auto p : b.parameters()) p.set_requires_grad(on);
}

}  // namespace

std::string Trainer::save() const {
  auto &I = *impl_;
  if (!I.members[0].optimizer)
    throw Error(ss::kObjectNotInPrerequisiteState, "the model was not trained");
  torch::NoGradGuard no_grad;
  set_trained_blocks_grad(I, false);
  torch::jit::Module out = new_module("LearnedEncoder");
  out.define(saved_source(I, out));
  out.eval();
  // The saved module must compute what was trained: the first image through it against the
  // frozen part and the trainer's own embedding.
  bool same;
  {
    FlushToZero ftz;
    at::Tensor y = I.prefix.forward({I.first_input}).toTensor();
    if (y.is_mkldnn()) y = y.to_dense();
    at::Tensor mine = I.embed(y), saved = out.forward({I.first_input}).toTensor();
    same = mine.sizes().equals(saved.sizes()) && (mine - saved).abs().max().item<double>() <=
                                                     1e-3 * (1 + mine.abs().max().item<double>());
  }
  std::ostringstream s;
  if (same) out.save(s);
  set_trained_blocks_grad(I, true);
  if (!same) throw Error(ss::kInternalError, "the saved model does not reproduce the trained one");
  return s.str();
}

}  // namespace lookalike::model
