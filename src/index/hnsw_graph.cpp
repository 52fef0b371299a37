// The in-memory HNSW graph of the lookalike_hnsw index; see hnsw_graph.hpp.
#include "index/hnsw_graph.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "vector/kernels.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOOKALIKE_X86 1
#endif

namespace lookalike::hnsw {

int random_level(double u, int m) {
  if (u <= 0) u = 1e-300;
  double l = -std::log(u) / std::log(static_cast<double>(std::max(m, 2)));
  int level = static_cast<int>(std::floor(l));
  return std::clamp(level, 0, kMaxLevel);
}

int select_neighbors(Metric metric, int dim, const float *dist, const int8_t *const *codes,
                     const CodeHeader *const *hdrs, int n, int max_sel, int *out, float *scratch,
                     bool *kept_flags, bool fill) {
  int nsel = 0;
  for (int i = 0; i < n; ++i) kept_flags[i] = false;
  (void)scratch;
  for (int i = 0; i < n && nsel < max_sel; ++i) {
    bool good = true;
    for (int s = 0; s < nsel; ++s) {
      int j = out[s];
      float d = pair_distance(metric, codes[i], *hdrs[i], codes[j], *hdrs[j], dim);
      if (d < dist[i]) {
        good = false;
        break;
      }
    }
    if (good) {
      out[nsel++] = i;
      kept_flags[i] = true;
    }
  }
  // Fill with the nearest discarded candidates.
  for (int i = 0; fill && i < n && nsel < max_sel; ++i)
    if (!kept_flags[i]) {
      out[nsel++] = i;
      kept_flags[i] = true;
    }
  return nsel;
}

// ---- in-memory graph -----------------------------------------------------------------------

// Scratch of one thread that links elements (or of search()).
struct Graph::Context {
  std::vector<uint32_t> visited;  // epoch tags, one per element
  uint32_t epoch = 0;
  std::vector<Candidate> cand, best;   // search_layer's heaps
  std::vector<uint32_t> nb;            // a neighbour list copied under its element's lock
  std::vector<Candidate> found;        // search_layer: the neighbours measured
  std::vector<Candidate> ep, w, kept;  // link(): entry candidates, results, kept
  std::vector<Candidate> conn;         // connect(): candidates
  std::vector<float> dist_buf;         // select(): scratch
  std::vector<const int8_t *> code_buf;
  std::vector<const CodeHeader *> hdr_buf;
  std::vector<int> sel_buf;
  std::vector<float> scratch;
  std::unique_ptr<bool[]> flag_buf;
  size_t flag_cap = 0;
};

namespace {

// A one-byte spin lock per element (GCC atomics on plain bytes, so the array can grow between
// the parallel phases). Held only while a neighbour list is copied or rewritten.
class NodeLock {
 public:
  explicit NodeLock(uint8_t *b) : b_(b) {
    while (__atomic_test_and_set(b_, __ATOMIC_ACQUIRE)) {
      while (__atomic_load_n(b_, __ATOMIC_RELAXED)) {
#ifdef LOOKALIKE_X86
        _mm_pause();
#endif
      }
    }
  }
  ~NodeLock() { __atomic_clear(b_, __ATOMIC_RELEASE); }
  NodeLock(const NodeLock &) = delete;
  NodeLock &operator=(const NodeLock &) = delete;

 private:
  uint8_t *b_;
};

// Blocks every signal in the threads created while it lives (they inherit the mask), so that
// the process's signal handlers only ever run on the calling thread.
class BlockSignals {
 public:
  BlockSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~BlockSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockSignals(const BlockSignals &) = delete;
  BlockSignals &operator=(const BlockSignals &) = delete;

 private:
  sigset_t old_;
};

}  // namespace

Graph::Graph(int dim, Metric metric, int m, int ef_construction)
    : dim_(dim), metric_(metric), m_(m), ef_construction_(ef_construction) {}

Graph::~Graph() = default;

size_t Graph::element_bytes(int dim, int m, int level) {
  // codes, levels, lock, layer-0 ids and distances, and one visited tag per linking thread
  // (counted once here; link_pending() accounts for the others).
  size_t b = 2 * (dim + sizeof(CodeHeader)) + 1 + 1 + 4 * (2 * m + 1) + 4 * 2 * m + 4;
  b += 2 * sizeof(std::vector<uint32_t>);
  if (level > 0) b += 4 * level * (m + 1) + 4 * level * m;
  return b;
}

size_t Graph::memory_bytes() const {
  return memory_ + 4 * size() * (ctx_.size() > 1 ? ctx_.size() - 1 : 0);
}

uint32_t *Graph::slot(uint32_t id, int layer) {
  if (layer == 0) return &layer0_[static_cast<size_t>(id) * (2 * m_ + 1)];
  return &upper_[id][static_cast<size_t>(layer - 1) * (m_ + 1)];
}

float *Graph::slot_dist(uint32_t id, int layer) {
  if (layer == 0) return &layer0_dist_[static_cast<size_t>(id) * 2 * m_];
  return &upper_dist_[id][static_cast<size_t>(layer - 1) * m_];
}

const uint32_t *Graph::slot(uint32_t id, int layer) const {
  return const_cast<Graph *>(this)->slot(id, layer);
}

const uint32_t *Graph::neighbors(uint32_t id, int layer, int *n) const {
  const uint32_t *s = slot(id, layer);
  *n = static_cast<int>(s[0]);
  return s + 1;
}

void Graph::prepare(Context &c) const {
  if (c.visited.size() < size()) c.visited.resize(size(), 0);
  c.scratch.resize(dim_);
  c.nb.resize(2 * m_ + 1);
  c.found.resize(2 * m_ + 1);
}

namespace {

// A binary heap of candidates over a reused std::vector (cleared on construction): the nearest
// on top if kNearestOnTop, else the farthest.
template <bool kNearestOnTop>
class VectorHeap {
 public:
  explicit VectorHeap(std::vector<Candidate> &v) : v_(v) { v_.clear(); }
  void push(const Candidate &c) {
    v_.push_back(c);
    std::push_heap(v_.begin(), v_.end(), Below());
  }
  void pop() {
    std::pop_heap(v_.begin(), v_.end(), Below());
    v_.pop_back();
  }
  const Candidate &top() const { return v_.front(); }
  int size() const { return static_cast<int>(v_.size()); }

 private:
  // std::push_heap keeps the greatest on top: Below orders what is to come out later first. A
  // function object, not a function pointer, so that the heap operations inline it.
  struct Below {
    bool operator()(const Candidate &a, const Candidate &b) const {
      return kNearestOnTop ? a.dist > b.dist : a.dist < b.dist;
    }
  };
  std::vector<Candidate> &v_;
};

}  // namespace

// The in-memory graph seen by hnsw::search_layer: visited tags by epoch, neighbour lists copied
// under their element's lock (another thread may be rewriting them), codes prefetched before the
// distances are computed.
template <typename Dist>
class Graph::View {
 public:
  using Cand = Candidate;
  View(const Graph &g, Context &ctx, Dist &dist) : g_(g), ctx_(ctx), dist_(dist) {
    if (++ctx.epoch == 0) {
      std::fill(ctx.visited.begin(), ctx.visited.end(), 0);
      ctx.epoch = 1;
    }
    epoch_ = ctx.epoch;
  }
  bool first_visit(const Candidate &c) {
    if (ctx_.visited[c.id] == epoch_) return false;
    ctx_.visited[c.id] = epoch_;
    return true;
  }
  bool returnable(const Candidate &) const { return true; }
  int expand(const Candidate &c, int layer) {
    uint32_t *nb = ctx_.nb.data();
    int n;
    {
      NodeLock lock(&g_.locks_[c.id]);
      const uint32_t *s = g_.slot(c.id, layer);
      n = static_cast<int>(s[0]);
      std::copy(s + 1, s + 1 + n, nb);
    }
    // Mark the unvisited neighbours and prefetch their codes, then compute the distances.
    Candidate *found = ctx_.found.data();
    int nt = 0;
    for (int i = 0; i < n; ++i) {
      uint32_t e = nb[i];
      if (ctx_.visited[e] == epoch_) continue;
      ctx_.visited[e] = epoch_;
      found[nt++].id = e;
      const char *p = reinterpret_cast<const char *>(g_.code(e));
      for (int off = 0; off < g_.dim_; off += 64) __builtin_prefetch(p + off);
    }
    for (int i = 0; i < nt; ++i) found[i].dist = dist_(found[i].id);
    return nt;
  }
  Candidate expanded(int i) const { return ctx_.found[i]; }
  bool expanded_returnable(int) const { return true; }

 private:
  const Graph &g_;
  Context &ctx_;
  Dist &dist_;
  uint32_t epoch_;
};

template <typename Dist>
void Graph::search_layer(Context &ctx, Dist dist, const std::vector<Candidate> &entry, int ef,
                         int layer, std::vector<Candidate> &out) const {
  View<Dist> view(*this, ctx, dist);
  VectorHeap<true> cand(ctx.cand);
  VectorHeap<false> best(ctx.best);
  hnsw::search_layer(view, entry.data(), static_cast<int>(entry.size()), ef, layer, cand, best);
  out.assign(ctx.best.begin(), ctx.best.end());
  std::sort(out.begin(), out.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
}

void Graph::connect(Context &ctx, uint32_t from, uint32_t to, float dist, int layer) {
  if (from == to) return;
  NodeLock lock(&locks_[from]);
  uint32_t *s = slot(from, layer);
  float *sd = slot_dist(from, layer);
  int cap = max_neighbors(m_, layer);
  int n = static_cast<int>(s[0]);
  for (int i = 0; i < n; ++i)
    if (s[1 + i] == to) return;
  if (n < cap) {
    s[1 + n] = to;
    sd[n] = dist;
    s[0] = n + 1;
    return;
  }
  // Full: re-select among the current neighbours (their distances are kept) and the new one. The
  // heuristic without fill usually keeps far fewer than cap, so the next links are appended
  // without another selection.
  std::vector<Candidate> &c = ctx.conn;
  c.clear();
  for (int i = 0; i < n; ++i) c.push_back({sd[i], s[1 + i]});
  c.push_back({dist, to});
  store_selected(ctx, c, cap, s, sd);
}

void Graph::store_selected(Context &ctx, std::vector<Candidate> &c, int cap, uint32_t *s,
                           float *sd) const {
  std::sort(c.begin(), c.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
  int k = select(ctx, c, cap);
  for (int i = 0; i < k; ++i) {
    s[1 + i] = c[ctx.sel_buf[i]].id;
    sd[i] = c[ctx.sel_buf[i]].dist;
  }
  s[0] = k;
}

int Graph::select(Context &ctx, const std::vector<Candidate> &c, int cap) const {
  size_t n = c.size();
  ctx.dist_buf.resize(n);
  ctx.code_buf.resize(n);
  ctx.hdr_buf.resize(n);
  ctx.sel_buf.resize(n);
  if (ctx.flag_cap < n) {
    ctx.flag_buf.reset(new bool[n]);
    ctx.flag_cap = n;
  }
  for (size_t i = 0; i < n; ++i) {
    ctx.dist_buf[i] = c[i].dist;
    ctx.code_buf[i] = code(c[i].id);
    ctx.hdr_buf[i] = &hdrs_[c[i].id];
  }
  return select_neighbors(metric_, dim_, ctx.dist_buf.data(), ctx.code_buf.data(),
                          ctx.hdr_buf.data(), static_cast<int>(n), cap, ctx.sel_buf.data(),
                          ctx.scratch.data(), ctx.flag_buf.get(), false);
}

uint32_t Graph::append(const float *x, int level) {
  level = std::clamp(level, 0, kMaxLevel);
  uint32_t id = static_cast<uint32_t>(levels_.size());
  codes_.resize(codes_.size() + dim_);
  hdrs_.emplace_back();
  quantize(x, dim_, &codes_[static_cast<size_t>(id) * dim_], &hdrs_.back());
  codes2_.resize(codes2_.size() + dim_);
  hdrs2_.emplace_back();
  quantize_residual(x, dim_, &codes_[static_cast<size_t>(id) * dim_], hdrs_.back(),
                    &codes2_[static_cast<size_t>(id) * dim_], &hdrs2_.back());
  levels_.push_back(static_cast<uint8_t>(level));
  locks_.push_back(0);
  layer0_.resize(layer0_.size() + 2 * m_ + 1, 0);
  layer0_dist_.resize(layer0_dist_.size() + 2 * m_, 0.0f);
  upper_.emplace_back();
  upper_dist_.emplace_back();
  if (level > 0) {
    upper_.back().assign(static_cast<size_t>(level) * (m_ + 1), 0);
    upper_dist_.back().assign(static_cast<size_t>(level) * m_, 0.0f);
  }
  memory_ += element_bytes(dim_, m_, level);
  return id;
}

void Graph::link(uint32_t id, Context &ctx) {
  const int level = levels_[id];
  // The entry point; an element above the top layer keeps the lock until it is the new entry
  // point (rare: one in m^level elements), so two of them never race.
  std::unique_lock<std::mutex> top(entry_mu_);
  const int max_level = max_level_;
  const int entry = entry_;
  if (entry < 0) {
    entry_ = static_cast<int>(id);
    max_level_ = level;
    return;
  }
  if (level <= max_level) top.unlock();
  // The build compares the new element's code with the others' (int8 x int8, the same pair
  // distances as the neighbour selection): faster than float x int8 and as good for the graph.
  const int8_t *xc = code(id);
  const CodeHeader xh = hdrs_[id];
  auto dist = [&](uint32_t e) { return pair_distance(metric_, xc, xh, code(e), hdrs_[e], dim_); };
  std::vector<Candidate> &ep = ctx.ep, &w = ctx.w, &kept = ctx.kept;
  ep.assign(1, Candidate{dist(static_cast<uint32_t>(entry)), static_cast<uint32_t>(entry)});
  for (int l = max_level; l > level; --l) {
    search_layer(ctx, dist, ep, 1, l, w);
    ep.assign(w.begin(), w.begin() + 1);
  }
  for (int l = std::min(level, max_level); l >= 0; --l) {
    search_layer(ctx, dist, ep, ef_construction_, l, w);
    // With several threads, id can already be on this layer: another thread found it on the
    // layer above and linked to it here, so the search can reach id itself. It is never its
    // own neighbour; should nothing else be left, the entry candidates (id-free) stand in.
    w.erase(std::remove_if(w.begin(), w.end(), [id](const Candidate &x) { return x.id == id; }),
            w.end());
    if (w.empty()) w = ep;
    const int cap = max_neighbors(m_, l);
    int k = select(ctx, w, cap);
    kept.clear();
    for (int i = 0; i < k; ++i) kept.push_back(w[ctx.sel_buf[i]]);
    {
      NodeLock lock(&locks_[id]);
      uint32_t *s = slot(id, l);
      float *sd = slot_dist(id, l);
      int n0 = static_cast<int>(s[0]);
      if (n0 > 0) {
        // Another thread linked to id on this layer already (it started its search from id,
        // found on the layer above): its links join the candidates.
        std::vector<Candidate> &c = ctx.conn;
        c.assign(kept.begin(), kept.end());
        for (int i = 0; i < n0; ++i)
          if (std::none_of(kept.begin(), kept.end(),
                           [&](const Candidate &x) { return x.id == s[1 + i]; }))
            c.push_back({sd[i], s[1 + i]});
        store_selected(ctx, c, cap, s, sd);
      } else {
        for (int i = 0; i < k; ++i) {
          s[1 + i] = kept[i].id;
          sd[i] = kept[i].dist;
        }
        s[0] = k;
      }
    }
    for (const Candidate &e : kept) connect(ctx, e.id, id, e.dist, l);
    ep = w;
  }
  if (level > max_level) {
    max_level_ = level;
    entry_ = static_cast<int>(id);
  }
}

uint32_t Graph::add(const float *x, int level) {
  uint32_t id = append(x, level);
  link_pending(1, nullptr);
  return id;
}

template <typename Fn>
size_t Graph::run_threads(size_t begin, size_t end, int threads,
                          const std::function<bool(size_t)> &poll, Fn fn) {
  if (begin >= end) return 0;
  threads = std::max(1, std::min<int>(threads, static_cast<int>(end - begin)));
  while (static_cast<int>(ctx_.size()) < threads) ctx_.push_back(std::make_unique<Context>());
  for (int t = 0; t < threads; ++t) prepare(*ctx_[t]);
  std::atomic<size_t> next{begin}, done{0};
  std::atomic<bool> stop{false};
  std::mutex err_mu;
  std::exception_ptr err;
  auto work = [&](Context &c, bool caller) {
    try {
      while (!stop.load(std::memory_order_relaxed)) {
        size_t id = next.fetch_add(1);
        if (id >= end) break;
        fn(static_cast<uint32_t>(id), c);
        size_t d = done.fetch_add(1) + 1;
        if (caller && poll && !poll(d)) stop = true;
      }
    } catch (...) {
      std::lock_guard<std::mutex> g(err_mu);
      if (!err) err = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> pool;
  if (threads > 1) {
    BlockSignals blocked;
    try {
      for (int t = 1; t < threads; ++t) pool.emplace_back(work, std::ref(*ctx_[t]), false);
    } catch (...) {
      // Could not start a thread (std::system_error): the others and this one do the work.
    }
  }
  work(*ctx_[0], true);
  for (std::thread &t : pool) t.join();
  if (err) std::rethrow_exception(err);
  return std::min(next.load(), end) - begin;
}

size_t Graph::link_pending(int threads, const std::function<bool(size_t)> &poll) {
  // On an exception the graph is left half-linked: the caller discards it.
  size_t linked =
      run_threads(linked_, size(), threads, poll, [this](uint32_t id, Context &c) { link(id, c); });
  linked_ += linked;
  return linked;
}

size_t Graph::refine(size_t begin, size_t end, int threads,
                     const std::function<bool(size_t)> &poll) {
  return run_threads(begin, std::min(end, linked_), threads, poll,
                     [this](uint32_t id, Context &c) { relink(id, c); });
}

void Graph::relink(uint32_t id, Context &ctx) {
  const int8_t *xc = code(id);
  const CodeHeader xh = hdrs_[id];
  auto dist = [&](uint32_t e) { return pair_distance(metric_, xc, xh, code(e), hdrs_[e], dim_); };
  int entry, max_level;
  {
    std::lock_guard<std::mutex> top(entry_mu_);
    entry = entry_;
    max_level = max_level_;
  }
  if (entry < 0 || static_cast<uint32_t>(entry) == id) return;
  std::vector<Candidate> &ep = ctx.ep, &w = ctx.w, &kept = ctx.kept;
  ep.assign(1, Candidate{dist(static_cast<uint32_t>(entry)), static_cast<uint32_t>(entry)});
  for (int l = max_level; l > 0; --l) {
    search_layer(ctx, dist, ep, 1, l, w);
    ep.assign(w.begin(), w.begin() + 1);
  }
  search_layer(ctx, dist, ep, ef_construction_, 0, w);
  const int cap = max_neighbors(m_, 0);
  std::vector<Candidate> &c = ctx.conn;
  c.clear();
  for (const Candidate &x : w)
    if (x.id != id) c.push_back(x);
  {
    NodeLock lock(&locks_[id]);
    const uint32_t *s = slot(id, 0);
    const float *sd = slot_dist(id, 0);
    for (uint32_t i = 0; i < s[0]; ++i)
      if (std::none_of(c.begin(), c.end(), [&](const Candidate &x) { return x.id == s[1 + i]; }))
        c.push_back({sd[i], s[1 + i]});
  }
  std::sort(c.begin(), c.end(),
            [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
  int k = select(ctx, c, cap);
  kept.clear();
  for (int i = 0; i < k; ++i) kept.push_back(c[ctx.sel_buf[i]]);
  {
    NodeLock lock(&locks_[id]);
    uint32_t *s = slot(id, 0);
    float *sd = slot_dist(id, 0);
    for (int i = 0; i < k; ++i) {
      s[1 + i] = kept[i].id;
      sd[i] = kept[i].dist;
    }
    s[0] = k;
  }
  for (const Candidate &e : kept) connect(ctx, e.id, id, e.dist, 0);
}

size_t Graph::connect_unreachable() {
  const size_t n = size();
  if (n < 2 || linked_ < n || entry_ < 0) return 0;
  const int cap = max_neighbors(m_, 0);
  std::vector<uint32_t> indeg(n, 0);
  for (size_t x = 0; x < n; ++x) {
    const uint32_t *s = slot(static_cast<uint32_t>(x), 0);
    for (uint32_t i = 0; i < s[0]; ++i) indeg[s[1 + i]]++;
  }
  std::vector<uint8_t> reached(n, 0);
  std::vector<uint32_t> stack;
  auto flood = [&](uint32_t from) {
    reached[from] = 1;
    stack.assign(1, from);
    while (!stack.empty()) {
      uint32_t x = stack.back();
      stack.pop_back();
      const uint32_t *s = slot(x, 0);
      for (uint32_t i = 0; i < s[0]; ++i)
        if (!reached[s[1 + i]]) {
          reached[s[1 + i]] = 1;
          stack.push_back(s[1 + i]);
        }
    }
  };
  size_t added = 0;
  // A replaced link may cut off what only an unreached element linked to: each pass starts from
  // a fresh flood from the entry point (in practice the second pass finds nothing).
  for (int pass = 0; pass < 8; ++pass) {
    std::fill(reached.begin(), reached.end(), 0);
    flood(static_cast<uint32_t>(entry_));
    bool progress = false;
    for (size_t xi = 0; xi < n; ++xi) {
      uint32_t x = static_cast<uint32_t>(xi);
      if (reached[x]) continue;
      // x's own neighbours that are reachable, nearest first: the first that can take a link
      // to x without orphaning another element gets it.
      const uint32_t *xs = slot(x, 0);
      const float *xd = slot_dist(x, 0);
      std::vector<Candidate> ys;
      for (uint32_t i = 0; i < xs[0]; ++i)
        if (reached[xs[1 + i]]) ys.push_back({xd[i], xs[1 + i]});
      std::sort(ys.begin(), ys.end(),
                [](const Candidate &a, const Candidate &b) { return a.dist < b.dist; });
      for (const Candidate &y : ys) {
        uint32_t *s = slot(y.id, 0);
        float *sd = slot_dist(y.id, 0);
        int k = static_cast<int>(s[0]);
        if (k < cap) {
          s[1 + k] = x;
          sd[k] = y.dist;
          s[0] = k + 1;
        } else {
          // Replace y's farthest neighbour that other elements also link to.
          int far = -1;
          for (int i = 0; i < k; ++i)
            if (indeg[s[1 + i]] > 1 && (far < 0 || sd[i] > sd[far])) far = i;
          if (far < 0) continue;
          indeg[s[1 + far]]--;
          s[1 + far] = x;
          sd[far] = y.dist;
        }
        indeg[x]++;
        added++;
        flood(x);
        progress = true;
        break;
      }
    }
    if (!progress) break;
  }
  return added;
}

std::vector<Candidate> Graph::search(const float *q, int k, int ef) const {
  std::vector<Candidate> w;
  if (entry_ < 0) return w;
  if (!search_ctx_) search_ctx_ = std::make_unique<Context>();
  Context &ctx = *search_ctx_;
  prepare(ctx);
  float qnorm2 = kernels::dot(q, q, dim_);
  auto dist = [&](uint32_t e) { return node_distance(q, qnorm2, e); };
  ctx.ep.assign(1, Candidate{dist(static_cast<uint32_t>(entry_)), static_cast<uint32_t>(entry_)});
  for (int l = max_level_; l > 0; --l) {
    search_layer(ctx, dist, ctx.ep, 1, l, w);
    ctx.ep.assign(w.begin(), w.begin() + 1);
  }
  search_layer(ctx, dist, ctx.ep, std::max(ef, k), 0, w);
  if (static_cast<int>(w.size()) > k) w.resize(k);
  return w;
}

}  // namespace lookalike::hnsw
