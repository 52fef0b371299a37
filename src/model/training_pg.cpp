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

extern "C" {
#include "executor/spi.h"
#include "nodes/plannodes.h"
#include "utils/portal.h"
}

using namespace lookalike;
using namespace lookalike::model;

namespace {

constexpr int kFetchRows = 16;
constexpr int kMaxLabelColumns = 16;

struct BaseModel {
  bool found = false;
  std::string path;  // empty: stored in the database
  std::string sha256;
  Normalization norm;
  std::string bytes;
};

BaseModel read_base(const std::string &name) {
  ModelRow row;
  BaseModel b;
  b.found = pg::guarded([&] { return lookup_model(name.c_str(), &row); });
  if (!b.found) return b;
  b.sha256 = row.sha256;
  b.norm.input_size = row.input_size;
  for (int c = 0; c < 3; ++c) {
    b.norm.mean[c] = row.mean[c];
    b.norm.stddev[c] = row.stddev[c];
  }
  std::string where;
  if (row.stored) {
    bytea *data = pg::guarded([&] { return stored_model_bytes(name.c_str()); });
    if (data == nullptr)
      throw Error(sqlstate::kDataCorrupted,
                  "model \"" + name + "\" has neither a path nor stored TorchScript");
    b.bytes.assign(VARDATA(data), VARSIZE(data) - VARHDRSZ);
    pg::guarded([&] { pfree(data); });
    where = "stored model \"" + name + "\"";
  } else {
    b.path = row.path;
    std::vector<char> file =
        read_file(b.path, pg::guarded([] { return model::max_model_bytes_setting(); }));
    b.bytes.assign(file.begin(), file.end());
    where = "\"" + b.path + "\"";
  }
  std::string digest = sha256_hex(b.bytes.data(), b.bytes.size());
  if (digest != b.sha256)
    throw Error(sqlstate::kDataCorrupted, "base model has changed since it was registered",
                "The sha256 of " + where + " is " + digest + "; the registration recorded " +
                    b.sha256 + ".");
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

}  // namespace

// lookalike._train_model(name text, base_model text, training_query text, epochs int,
//     embedding_dims int, trainable_blocks int, batch_size int, learning_rate float8,
//     base_learning_rate float8, seed int,
//     OUT torchscript bytea, OUT sha256 text, OUT dims int, OUT training jsonb)
LOOKALIKE_FUNCTION(lookalike_train_model) {
  bool super = pg::guarded([] { return superuser(); });
  if (!super)
    throw Error(sqlstate::kInsufficientPrivilege, "only superusers may train models",
                "A trained model is TorchScript that runs inside the server.");
  for (int i = 0; i < 10; ++i)
    if (PG_ARGISNULL(i))
      throw Error(sqlstate::kInvalidParameterValue, "arguments must not be null");
  std::string name(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); }));
  std::string base_name(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(1)); }));
  std::string query(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(2)); }));
  TrainOptions opt;
  opt.epochs = PG_GETARG_INT32(3);
  opt.embedding_dims = PG_GETARG_INT32(4);
  opt.trainable_blocks = PG_GETARG_INT32(5);
  opt.batch_size = PG_GETARG_INT32(6);
  opt.learning_rate = PG_GETARG_FLOAT8(7);
  opt.base_learning_rate = PG_GETARG_FLOAT8(8);
  opt.seed = uint64_t(int64_t(PG_GETARG_INT32(9)));
  check_train_options(opt);
  const int threads = pg::guarded([] { return model::threads_setting(); });
  const int64_t max_pixels = pg::guarded([] { return image::max_image_pixels(); });
  configure_threads(threads);

  // The extension's own catalog reads (lookalike.models, lookalike.model_data) run with a pinned
  // search_path, whoever calls and whatever the session's path: lookalike.train_model() pins it
  // already, this also covers a superuser calling lookalike._train_model() directly. The
  // training query (below) then runs with the caller's path (train_model's pinned one).
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
  const int pid = pg::guarded([] { return MyProcPid; });
  ProgressFile progress(pid, name);
  progress.update("reading", 0, opt.epochs, 0, 0, NAN, true);

  Portal portal = nullptr;
  double estimated = 0;
  pg::guarded([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    portal = SPI_cursor_open_with_args(nullptr, query.c_str(), 0, nullptr, nullptr, nullptr, true,
                                       CURSOR_OPT_NO_SCROLL);
    check_training_columns(portal->tupDesc);
    if (portal->stmts != NIL) {
      PlannedStmt *ps = linitial_node(PlannedStmt, portal->stmts);
      if (ps->planTree != nullptr) estimated = ps->planTree->plan_rows;
    }
  });
  const int heads = pg::guarded([&] { return portal->tupDesc->natts - 1; });
  std::vector<std::string> label_names;
  for (int h = 0; h < heads; ++h)
    label_names.push_back(pg::guarded([&] {
      return static_cast<const char *>(NameStr(TupleDescAttr(portal->tupDesc, h + 1)->attname));
    }));

  Trainer trainer(base.bytes, opt, heads);
  base.bytes.clear();
  base.bytes.shrink_to_fit();
  Preprocessor pre(base.norm);
  std::vector<std::map<std::string, int32_t>> classes(static_cast<size_t>(heads));
  std::vector<EncodedImage> images;
  std::vector<std::vector<uint8_t>> owned;
  std::vector<int32_t> labels;
  std::vector<float> input;
  int64_t rows = 0, null_images = 0, null_labels = 0;
  const auto t0 = std::chrono::steady_clock::now();
  MemoryContext batch_cxt = pg::guarded([] {
    return AllocSetContextCreate(CurrentMemoryContext, "train_model batch", ALLOCSET_DEFAULT_SIZES);
  });
  for (;;) {
    pg::guarded([&] {
      CHECK_FOR_INTERRUPTS();
      MemoryContextReset(batch_cxt);
      SPI_cursor_fetch(portal, true, kFetchRows);
    });
    const int n = int(SPI_processed);
    if (n == 0) break;
    images.clear();
    owned.clear();
    labels.clear();
    std::vector<int64_t> row_numbers;
    for (int i = 0; i < n; ++i) {
      ++rows;
      bool image_null = false;
      std::vector<std::string> values(static_cast<size_t>(heads));
      std::vector<char> nulls(size_t(heads), 0);
      EncodedImage enc;
      pg::guarded([&] {
        HeapTuple tup = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        Datum img = SPI_getbinval(tup, desc, 1, &isnull);
        image_null = isnull;
        if (isnull) return;
        MemoryContext old = MemoryContextSwitchTo(batch_cxt);
        bytea *b = DatumGetByteaPP(img);
        enc = {reinterpret_cast<const uint8_t *>(VARDATA_ANY(b)), VARSIZE_ANY_EXHDR(b)};
        for (int h = 0; h < heads; ++h) {
          char *v = SPI_getvalue(tup, desc, h + 2);  // palloc'd in batch_cxt
          if (v == nullptr)
            nulls[size_t(h)] = 1;
          else
            values[size_t(h)].assign(v);
        }
        MemoryContextSwitchTo(old);
      });
      if (image_null) {
        ++null_images;
        continue;
      }
      owned.emplace_back(enc.data, enc.data + enc.len);  // our own copy of the bytes
      row_numbers.push_back(rows);
      for (int h = 0; h < heads; ++h) {
        if (nulls[size_t(h)]) {
          ++null_labels;
          labels.push_back(-1);
          continue;
        }
        auto &m = classes[size_t(h)];
        auto it = m.find(values[size_t(h)]);
        if (it == m.end()) it = m.emplace(values[size_t(h)], int32_t(m.size())).first;
        labels.push_back(it->second);
      }
    }
    for (const auto &o : owned) images.push_back({o.data(), o.size()});
    if (images.empty()) {
      pg::guarded([] { SPI_freetuptable(SPI_tuptable); });
      continue;
    }
    interrupts();
    try {
      prepare_batch(pre, images.data(), int(images.size()), max_pixels, input);
    } catch (const BatchImageError &e) {
      try {
        std::rethrow_exception(e.cause());
      } catch (const Error &inner) {
        throw Error(inner.sqlstate(),
                    "image of training row " + std::to_string(row_numbers[size_t(e.index())]) +
                        ": " + inner.what(),
                    inner.detail(), "Filter out undecodable images in the training query.");
      }
    }
    interrupts();
    trainer.add(input.data(), int(images.size()), pre.size(), labels.data());
    pg::guarded([] { SPI_freetuptable(SPI_tuptable); });
    progress.update("caching", 0, opt.epochs, trainer.images(), int64_t(estimated), NAN);
  }
  pg::guarded([&] {
    MemoryContextDelete(batch_cxt);  // a child of SPI's procedure context: before SPI_finish
    SPI_cursor_close(portal);
    SPI_finish();
  });
  const double cache_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (trainer.images() == 0)
    throw Error(sqlstate::kInvalidParameterValue, "the training query returned no images",
                std::to_string(rows) + " rows, " + std::to_string(null_images) +
                    " of them with a NULL image.");
  std::vector<int> counts;
  for (int h = 0; h < heads; ++h) {
    int c = int(classes[size_t(h)].size());
    if (c < 2)
      throw Error(sqlstate::kInvalidParameterValue,
                  "label column \"" + label_names[size_t(h)] + "\" has " + std::to_string(c) +
                      (c == 1 ? " class" : " classes"),
                  {}, "Every label column needs at least two distinct non-null values.");
    counts.push_back(c);
  }
  trainer.set_classes(counts);
  pg::guarded([&] {
    ereport(
        NOTICE,
        (errmsg("train_model: %lld images cached in %.1f s (%.0f MB), %lld rows with a NULL "
                "image skipped",
                static_cast<long long>(trainer.images()), cache_seconds,
                double(trainer.cached_bytes()) / 1048576.0, static_cast<long long>(null_images))));
  });

  std::ostringstream epochs_json;
  for (int e = 1; e <= opt.epochs; ++e) {
    EpochResult r = trainer.train_epoch([&](int64_t step, int64_t steps) {
      interrupts();
      progress.update("training", e, opt.epochs, step, steps, NAN);
    });
    progress.update("training", e, opt.epochs, 1, 1, r.loss, true);
    pg::guarded([&] {
      ereport(NOTICE, (errmsg("train_model: epoch %d/%d, loss %.4f, %.1f s", r.epoch, opt.epochs,
                              r.loss, r.seconds)));
    });
    epochs_json << (e > 1 ? "," : "") << "{\"epoch\":" << r.epoch << ",\"loss\":" << r.loss
                << ",\"seconds\":" << r.seconds << "}";
  }
  interrupts();
  progress.update("saving", opt.epochs, opt.epochs, 0, 0, NAN, true);
  std::string bytes = trainer.save();
  std::string sha = sha256_hex(bytes.data(), bytes.size());
  // The result must load and run like any registered model.
  int dims;
  {
    std::unique_ptr<Model> check =
        Model::load_bytes("the trained model", std::vector<char>(bytes.begin(), bytes.end()), sha);
    dims = check->probe_dims(base.norm);
  }
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream j;
  j << "{\"base_model\":\"" << json_escape(base_name) << "\",\"base_sha256\":\"" << base.sha256
    << "\",\"rows\":" << rows << ",\"images\":" << trainer.images()
    << ",\"null_images\":" << null_images << ",\"null_labels\":" << null_labels << ",\"labels\":[";
  for (int h = 0; h < heads; ++h)
    j << (h ? "," : "") << "{\"column\":\"" << json_escape(label_names[size_t(h)])
      << "\",\"classes\":" << counts[size_t(h)] << "}";
  j << "],\"epochs\":" << opt.epochs << ",\"embedding_dims\":" << opt.embedding_dims
    << ",\"trainable_blocks\":" << opt.trainable_blocks << ",\"batch_size\":" << opt.batch_size
    << ",\"learning_rate\":" << opt.learning_rate
    << ",\"base_learning_rate\":" << opt.base_learning_rate << ",\"seed\":" << opt.seed
    << ",\"threads\":" << threads << ",\"cached_bytes\":" << trainer.cached_bytes()
    << ",\"cache_seconds\":" << cache_seconds << ",\"seconds\":" << total_seconds
    << ",\"history\":[" << epochs_json.str() << "]}";
  std::string training = j.str();
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
