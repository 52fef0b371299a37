// lookalike._train_model(): the SQL side of training (model/training.hpp). Reads the base
// model's registration and bytes, runs the training query through a cursor (image bytea, then
// one or more label columns of any type), caches the frozen part's output, trains, and returns
// the new TorchScript bytes; lookalike.train_model() (SQL) registers them. Nothing is written
// here, so an error or a cancel at any point leaves nothing registered.
//
// Progress: the file pg_stat_tmp/lookalike_training.<pid> (one JSON object, replaced atomically
// with rename) that the view lookalike.training_progress reads from any session; removed when
// the function returns or fails.
//
// search_path: the base model is read with pg_catalog, pg_temp; the training query runs as the
// caller with the caller's search_path (lookalike.train_model() pins it to pg_catalog, pg_temp, so
// the query must schema-qualify its tables).
//
// Frames that own C++ objects call PostgreSQL only through pg::guarded().
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "model/runtime.hpp"
#include "model/training.hpp"
#include "common/guard_pg.hpp"
#include "image/settings_pg.hpp"
#include "model/settings_pg.hpp"
#include "model/registry_pg.hpp"
#include "common/spi_pg.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/portal.h"
}

using namespace lookalike;
using namespace lookalike::model;

namespace {

constexpr int kFetchRows = 16;
constexpr int kMaxLabelColumns = 16;

struct BaseModel {
  bool found = false;
  std::string sha256;
  Normalization norm;
  std::vector<char> bytes;
};

BaseModel read_base(const std::string &name) {
  ModelRow row;
  BaseModel b;
  b.found = pg::guarded([&] { return lookup_model(name.c_str(), &row); });
  if (!b.found) return b;
  b.norm = normalization_of(row);
  CheckedModelBytes checked = registered_model_bytes(name, row);
  b.sha256 = std::move(checked.sha256);
  b.bytes = std::move(checked.bytes);
  return b;
}

std::string json_escape(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += c;
    }
  }
  return o;
}

// The progress file of this backend; removed by the destructor (success, error or cancel).
class ProgressFile {
 public:
  ProgressFile(int pid, const std::string &name) : name_(name) {
    path_ = "pg_stat_tmp/lookalike_training." + std::to_string(pid);
    pid_ = pid;
    start_ = std::chrono::steady_clock::now();
  }
  ~ProgressFile() { std::remove(path_.c_str()); }
  ProgressFile(const ProgressFile &) = delete;
  ProgressFile &operator=(const ProgressFile &) = delete;

  // Writes at most every 0.5 s unless forced.
  void update(const char *phase, int epoch, int epochs, int64_t done, int64_t total, double loss,
              bool force = false) {
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    std::ostringstream j;
    j << "{\"pid\":" << pid_ << ",\"model\":\"" << json_escape(name_) << "\",\"phase\":\"" << phase
      << "\",\"epoch\":" << epoch << ",\"epochs\":" << epochs << ",\"done\":" << done
      << ",\"total\":" << total << ",\"loss\":";
    if (loss == loss)
      j << loss;
    else
      j << "null";
    j << ",\"seconds\":" << std::chrono::duration<double>(now - start_).count() << "}";
    std::string tmp = path_ + ".tmp";
    std::FILE *f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return;  // progress is best effort
    std::string s = j.str();
    bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
    ok = std::fclose(f) == 0 && ok;
    if (ok) std::rename(tmp.c_str(), path_.c_str());
  }

 private:
  std::string path_, name_;
  int pid_ = 0;
  std::chrono::steady_clock::time_point start_, last_{};
};

void check_training_columns(TupleDesc desc) {
  if (desc->natts < 2 || TupleDescAttr(desc, 0)->atttypid != BYTEAOID)
    ereport(ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH),
             errmsg("training query must return an image (bytea) followed by label columns")));
  if (desc->natts - 1 > kMaxLabelColumns)
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    errmsg("training query returns more than %d label columns", kMaxLabelColumns)));
}

void interrupts() {
  pg::guarded([] { CHECK_FOR_INTERRUPTS(); });
}

// The arguments of _train_model(), checked.
struct TrainCall {
  std::string name, base_name, query;
  TrainOptions opt;
};

TrainCall read_call(FunctionCallInfo fcinfo) {
  bool super = pg::guarded([] { return superuser(); });
  if (!super)
    throw Error(sqlstate::kInsufficientPrivilege, "only superusers may train models",
                "A trained model is TorchScript that runs inside the server.");
  for (int i = 0; i < 15; ++i)
    if (PG_ARGISNULL(i))
      throw Error(sqlstate::kInvalidParameterValue, "arguments must not be null");
  TrainCall c;
  c.name = pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  c.base_name = pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(1)); });
  c.query = pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(2)); });
  c.opt.epochs = PG_GETARG_INT32(3);
  c.opt.embedding_dims = PG_GETARG_INT32(4);
  c.opt.trainable_blocks = PG_GETARG_INT32(5);
  c.opt.batch_size = PG_GETARG_INT32(6);
  c.opt.learning_rate = PG_GETARG_FLOAT8(7);
  c.opt.base_learning_rate = PG_GETARG_FLOAT8(8);
  c.opt.seed = uint64_t(int64_t(PG_GETARG_INT32(9)));
  c.opt.augmented_views = PG_GETARG_INT32(10);
  c.opt.margin = PG_GETARG_FLOAT8(11);
  c.opt.pooled_blocks = PG_GETARG_INT32(12);
  c.opt.proxies_per_class = PG_GETARG_INT32(13);
  c.opt.ensemble_members = PG_GETARG_INT32(14);
  // label_weights (float8[], NULL: 1 for every label column); a database whose definition of
  // _train_model predates the argument passes 15 (one library serves every SQL version)
  if (PG_NARGS() > 15 && !PG_ARGISNULL(15)) {
    const bool ok = pg::guarded([&] {
      ArrayType *a = PG_GETARG_ARRAYTYPE_P(15);
      if (ARR_NDIM(a) != 1 || ARR_ELEMTYPE(a) != FLOAT8OID ||
          (ARR_HASNULL(a) && array_contains_nulls(a)))
        return false;
      const double *w = reinterpret_cast<const double *>(ARR_DATA_PTR(a));
      c.opt.label_weights.assign(w, w + ARR_DIMS(a)[0]);
      return true;
    });
    if (!ok)
      throw Error(sqlstate::kInvalidParameterValue,
                  "label_weights must be a one-dimensional array of numbers without NULLs",
                  "Give one weight per label column, or NULL for 1 each.");
  }
  // bn_neck (boolean, NULL: off); a database whose _train_model predates it passes 16
  if (PG_NARGS() > 16 && !PG_ARGISNULL(16)) c.opt.bn_neck = PG_GETARG_BOOL(16);
  check_train_options(c.opt);
  return c;
}

// The extension's own catalog reads (lookalike.models, lookalike.model_data) run with a pinned
// search_path, whoever calls and whatever the session's path: lookalike.train_model() pins it
// already, this also covers a superuser calling lookalike._train_model() directly. The training
// query then runs with the caller's path (train_model's pinned one). 42704 if not registered.
BaseModel read_base_pinned(const std::string &base_name) {
  const int nest = pg::guarded([] {
    int level = NewGUCNestLevel();
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    return level;
  });
  BaseModel base = read_base(base_name);
  pg::guarded([&] { AtEOXact_GUC(true, nest); });
  if (!base.found)
    throw Error(sqlstate::kUndefinedObject, "base model \"" + base_name + "\" is not registered");
  return base;
}

// The training query's open cursor (inside an SPI connection), the planner's row estimate (for
// progress) and the names of its label columns.
struct TrainingQuery {
  Portal portal = nullptr;
  double estimated = 0;
  std::vector<std::string> label_names;
  int heads() const { return int(label_names.size()); }
};

TrainingQuery open_training_query(const std::string &query) {
  TrainingQuery q;
  pg::guarded([&] {
    spi::connect();
    q.portal = spi::open_cursor(query.c_str(), true);
    check_training_columns(q.portal->tupDesc);
    q.estimated = spi::estimated_rows(q.portal);
  });
  const int heads = pg::guarded([&] { return q.portal->tupDesc->natts - 1; });
  for (int h = 0; h < heads; ++h)
    q.label_names.push_back(pg::guarded([&] {
      return static_cast<const char *>(NameStr(TupleDescAttr(q.portal->tupDesc, h + 1)->attname));
    }));
  return q;
}

// What reading the training query found: row counts and, per label column, its classes (value
// -> class number, numbered as they first appear).
struct Reading {
  int64_t rows = 0, null_images = 0, null_labels = 0;
  std::vector<std::map<std::string, int32_t>> classes;
  double seconds = 0;
  double cpu_seconds = 0;  // of the backend (all threads)
};

// One fetched batch with a non-NULL image: the images' bytes (our own copies), their labels
// (heads per image, -1 for NULL) and their row numbers in the query (for error messages).
struct FetchedImages {
  std::vector<std::vector<uint8_t>> owned;
  std::vector<int32_t> labels;
  std::vector<int64_t> row_numbers;
};

// Reads the n rows of the last fetch; values are read in batch_cxt (reset by the caller).
FetchedImages read_fetched(int n, int heads, MemoryContext batch_cxt, Reading &r) {
  FetchedImages f;
  for (int i = 0; i < n; ++i) {
    ++r.rows;
    bool image_null = false;
    std::vector<std::string> values(static_cast<size_t>(heads));
    std::vector<char> nulls(size_t(heads), 0);
    EncodedImage enc;
    pg::guarded([&] {
      HeapTuple tup = spi::fetched(uint64(i));
      bool isnull;
      Datum img = spi::column(tup, 1, &isnull);
      image_null = isnull;
      if (isnull) return;
      MemoryContext old = MemoryContextSwitchTo(batch_cxt);
      bytea *b = DatumGetByteaPP(img);
      enc = {reinterpret_cast<const uint8_t *>(VARDATA_ANY(b)), VARSIZE_ANY_EXHDR(b)};
      for (int h = 0; h < heads; ++h) {
        char *v = spi::column_text(tup, h + 2);  // palloc'd in batch_cxt
        if (v == nullptr)
          nulls[size_t(h)] = 1;
        else
          values[size_t(h)].assign(v);
      }
      MemoryContextSwitchTo(old);
    });
    if (image_null) {
      ++r.null_images;
      continue;
    }
    f.owned.emplace_back(enc.data, enc.data + enc.len);
    f.row_numbers.push_back(r.rows);
    for (int h = 0; h < heads; ++h) {
      if (nulls[size_t(h)]) {
        ++r.null_labels;
        f.labels.push_back(-1);
        continue;
      }
      auto &m = r.classes[size_t(h)];
      auto it = m.find(values[size_t(h)]);
      if (it == m.end()) it = m.emplace(values[size_t(h)], int32_t(m.size())).first;
      f.labels.push_back(it->second);
    }
  }
  return f;
}

// Decodes and preprocesses a fetched batch into input; an undecodable image names its row.
void prepare_fetched(const FetchedImages &f, const Preprocessor &pre, int64_t max_pixels,
                     int extra_views, uint64_t key, std::vector<float> &input) {
  std::vector<EncodedImage> images;
  for (const auto &o : f.owned) images.push_back({o.data(), o.size()});
  try {
    prepare_batch(pre, images.data(), int(images.size()), max_pixels, input, extra_views, key);
  } catch (const BatchImageError &e) {
    try {
      std::rethrow_exception(e.cause());
    } catch (const Error &inner) {
      throw Error(inner.sqlstate(),
                  "image of training row " + std::to_string(f.row_numbers[size_t(e.index())]) +
                      ": " + inner.what(),
                  inner.detail(), "Filter out undecodable images in the training query.");
    }
  }
}

// Reads the whole training query, caching the frozen part's output of every image in trainer;
// closes the cursor and the SPI connection.
Reading cache_query(TrainingQuery &q, const Preprocessor &pre, int64_t max_pixels, Trainer &trainer,
                    ProgressFile &progress, const TrainOptions &opt) {
  const int epochs = opt.epochs;
  Reading r;
  r.classes.resize(size_t(q.heads()));
  std::vector<float> input;
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  MemoryContext batch_cxt = pg::guarded([] {
    return AllocSetContextCreate(CurrentMemoryContext, "train_model batch", ALLOCSET_DEFAULT_SIZES);
  });
  for (;;) {
    const int n = int(pg::guarded([&] {
      CHECK_FOR_INTERRUPTS();
      MemoryContextReset(batch_cxt);
      return spi::fetch(q.portal, kFetchRows);
    }));
    if (n == 0) break;
    FetchedImages f = read_fetched(n, q.heads(), batch_cxt, r);
    if (!f.owned.empty()) {
      interrupts();
      // the crops of image i of the query depend on the seed and i only
      prepare_fetched(f, pre, max_pixels, opt.augmented_views,
                      crop_key(opt.seed, trainer.images(), 0), input);
      interrupts();
      trainer.add(input.data(), int(f.owned.size()), pre.height(), pre.width(), f.labels.data());
    }
    pg::guarded([] { spi::free_fetched(); });
    progress.update("caching", 0, epochs, trainer.images(), int64_t(q.estimated), NAN);
  }
  pg::guarded([&] {
    MemoryContextDelete(batch_cxt);  // a child of SPI's procedure context: before finish()
    spi::close_cursor(q.portal);
    spi::finish();
  });
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cpu_seconds = process_cpu_seconds() - cpu0;
  return r;
}

// The number of classes of each label column; 22023 for a column with fewer than two.
std::vector<int> class_counts(const Reading &r, const std::vector<std::string> &label_names) {
  std::vector<int> counts;
  for (size_t h = 0; h < r.classes.size(); ++h) {
    int c = int(r.classes[h].size());
    if (c < 2)
      throw Error(sqlstate::kInvalidParameterValue,
                  "label column \"" + label_names[h] + "\" has " + std::to_string(c) +
                      (c == 1 ? " class" : " classes"),
                  {}, "Every label column needs at least two distinct non-null values.");
    counts.push_back(c);
  }
  return counts;
}

// Trains every epoch with a NOTICE each; returns the history as JSON array elements.
std::string run_epochs(Trainer &trainer, int epochs, ProgressFile &progress) {
  std::ostringstream history;
  for (int e = 1; e <= epochs; ++e) {
    EpochResult r = trainer.train_epoch([&](int64_t step, int64_t steps) {
      interrupts();
      progress.update("training", e, epochs, step, steps, NAN);
    });
    progress.update("training", e, epochs, 1, 1, r.loss, true);
    pg::guarded([&] {
      ereport(NOTICE, (errmsg("train_model: epoch %d/%d, loss %.4f, %.1f s", r.epoch, epochs,
                              r.loss, r.seconds)));
    });
    history << (e > 1 ? "," : "") << "{\"epoch\":" << r.epoch << ",\"loss\":" << r.loss
            << ",\"seconds\":" << r.seconds << ",\"cpu_seconds\":" << r.cpu_seconds << "}";
  }
  return history.str();
}

// The training column of lookalike.model_data: what was trained, on what, how long.
std::string training_json(const TrainCall &c, const BaseModel &base, const Reading &r,
                          const Trainer &trainer, const std::vector<std::string> &label_names,
                          const std::vector<int> &counts, int threads, double seconds,
                          const std::string &history) {
  const TrainOptions &opt = c.opt;
  std::ostringstream j;
  j << "{\"base_model\":\"" << json_escape(c.base_name) << "\",\"base_sha256\":\"" << base.sha256
    << "\",\"rows\":" << r.rows << ",\"images\":" << trainer.images()
    << ",\"null_images\":" << r.null_images << ",\"null_labels\":" << r.null_labels
    << ",\"labels\":[";
  for (size_t h = 0; h < label_names.size(); ++h)
    j << (h ? "," : "") << "{\"column\":\"" << json_escape(label_names[h])
      << "\",\"classes\":" << counts[h] << "}";
  j << "],\"epochs\":" << opt.epochs << ",\"embedding_dims\":" << opt.embedding_dims
    << ",\"trainable_blocks\":" << opt.trainable_blocks << ",\"batch_size\":" << opt.batch_size
    << ",\"learning_rate\":" << opt.learning_rate
    << ",\"base_learning_rate\":" << opt.base_learning_rate
    << ",\"augmented_views\":" << opt.augmented_views << ",\"margin\":" << opt.margin
    << ",\"pooled_blocks\":" << opt.pooled_blocks
    << ",\"proxies_per_class\":" << opt.proxies_per_class
    << ",\"ensemble_members\":" << opt.ensemble_members << ",\"label_weights\":";
  if (opt.label_weights.empty()) {
    j << "null";
  } else {
    j << "[";
    for (size_t h = 0; h < opt.label_weights.size(); ++h)
      j << (h ? "," : "") << opt.label_weights[h];
    j << "]";
  }
  j << ",\"bn_neck\":" << (opt.bn_neck ? "true" : "false") << ",\"seed\":" << opt.seed
    << ",\"threads\":" << threads << ",\"cached_bytes\":" << trainer.cached_bytes()
    << ",\"cache_seconds\":" << r.seconds << ",\"cache_cpu_seconds\":" << r.cpu_seconds
    << ",\"seconds\":" << seconds << ",\"history\":[" << history << "]}";
  return j.str();
}

// The function's result row (torchscript, sha256, dims, training). C-style but for the strings.
Datum result_row(FunctionCallInfo fcinfo, const std::string &bytes, const std::string &sha,
                 int dims, const std::string &training) {
  return pg::guarded([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    bytea *data = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
    SET_VARSIZE(data, VARHDRSZ + bytes.size());
    std::memcpy(VARDATA(data), bytes.data(), bytes.size());
    Datum values[4] = {PointerGetDatum(data), CStringGetTextDatum(sha.c_str()), Int32GetDatum(dims),
                       DirectFunctionCall1(jsonb_in, CStringGetDatum(training.c_str()))};
    bool nulls[4] = {false, false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}

}  // namespace

// lookalike._train_model(name text, base_model text, training_query text, epochs int,
//     embedding_dims int, trainable_blocks int, batch_size int, learning_rate float8,
//     base_learning_rate float8, seed int, augmented_views int, margin float8, pooled_blocks int,
//     proxies_per_class int, ensemble_members int, label_weights float8[] (may be NULL),
//     bn_neck bool, OUT torchscript bytea, OUT sha256 text, OUT dims int, OUT training jsonb)
LOOKALIKE_FUNCTION(lookalike_train_model) {
  const TrainCall call = read_call(fcinfo);
  const int threads = pg::guarded([] { return model::threads_setting(); });
  const int64_t max_pixels = pg::guarded([] { return image::max_image_pixels(); });
  configure_threads(threads);
  TensorHeap heap;  // freed activations stay in the heap until the call ends
  BaseModel base = read_base_pinned(call.base_name);
  const int pid = pg::guarded([] { return MyProcPid; });
  ProgressFile progress(pid, call.name);
  progress.update("reading", 0, call.opt.epochs, 0, 0, NAN, true);
  const auto t0 = std::chrono::steady_clock::now();

  TrainingQuery query = open_training_query(call.query);
  Trainer trainer(std::string_view(base.bytes.data(), base.bytes.size()), call.opt, query.heads());
  base.bytes.clear();
  base.bytes.shrink_to_fit();
  Preprocessor pre(base.norm);
  const Reading reading = cache_query(query, pre, max_pixels, trainer, progress, call.opt);
  if (trainer.images() == 0)
    throw Error(sqlstate::kInvalidParameterValue, "the training query returned no images",
                std::to_string(reading.rows) + " rows, " + std::to_string(reading.null_images) +
                    " of them with a NULL image.");
  const std::vector<int> counts = class_counts(reading, query.label_names);
  trainer.set_classes(counts);
  pg::guarded([&] {
    ereport(NOTICE,
            (errmsg("train_model: %lld images cached in %.1f s (%.0f MB), %lld rows with a NULL "
                    "image skipped",
                    static_cast<long long>(trainer.images()), reading.seconds,
                    double(trainer.cached_bytes()) / 1048576.0,
                    static_cast<long long>(reading.null_images))));
  });

  const std::string history = run_epochs(trainer, call.opt.epochs, progress);
  interrupts();
  progress.update("saving", call.opt.epochs, call.opt.epochs, 0, 0, NAN, true);
  std::string bytes = trainer.save();
  std::string sha = sha256_hex(bytes.data(), bytes.size());
  // The result must load and run like any registered model.
  int dims;
  {
    std::unique_ptr<Model> check = Model::load_checked(
        CheckedModelBytes{"the trained model", std::vector<char>(bytes.begin(), bytes.end()), sha});
    dims = check->probe_dims(base.norm);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result_row(fcinfo, bytes, sha, dims,
                    training_json(call, base, reading, trainer, query.label_names, counts, threads,
                                  seconds, history));
}
