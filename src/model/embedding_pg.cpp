// The SQL side of the model runtime: the registry probe, image_embedding(), image_embeddings()
// and the per-backend model cache.
//
// Frames that own C++ objects (std::string, std::vector, the cache) call PostgreSQL only through
// pg::guarded(). The small C-style helpers at the top (no C++ objects in their frames) call
// PostgreSQL directly and are themselves only ever called inside pg::guarded().
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/constants.hpp"
#include "common/errors.hpp"
#include "model/runtime.hpp"
#include "vector/embedding_pg.hpp"
#include "common/guard_pg.hpp"
#include "image/settings_pg.hpp"
#include "model/settings_pg.hpp"
#include "model/registry_pg.hpp"
#include "common/spi_pg.hpp"

extern "C" {
#include "utils/portal.h"
}

namespace lookalike::model {
namespace {
float4 get_float4(HeapTuple row, int col) {
  bool isnull;
  Datum d = spi::column(row, col, &isnull);
  return isnull ? NAN : DatumGetFloat4(d);
}
}  // namespace

bool lookup_model(const char *name, ModelRow *out) {
  spi::connect();
  HeapTuple row = spi::select_by_key(
      "SELECT path, sha256, input_size, mean[1], mean[2], mean[3], std[1], std[2], std[3], dims, "
      "pg_catalog.to_jsonb(m) OPERATOR(pg_catalog.->>) 'resize' OPERATOR(pg_catalog.=) 'pad', "
      "CAST(pg_catalog.to_jsonb(m) OPERATOR(pg_catalog.->>) 'input_width' AS pg_catalog.int4) "
      "FROM lookalike.models m WHERE name OPERATOR(pg_catalog.=) $1",
      name, "lookalike.models");
  if (row != nullptr) {
    char *path = spi::column_text(row, 1);
    char *sha = spi::column_text(row, 2);
    out->stored = path == nullptr;
    strlcpy(out->path, path ? path : "", sizeof out->path);
    strlcpy(out->sha256, sha ? sha : "", sizeof out->sha256);
    bool isnull;
    out->input_size = DatumGetInt32(spi::column(row, 3, &isnull));
    for (int c = 0; c < 3; ++c) {
      out->mean[c] = get_float4(row, 4 + c);
      out->stddev[c] = get_float4(row, 7 + c);
    }
    out->dims = DatumGetInt32(spi::column(row, 10, &isnull));
    // resize is read through to_jsonb: a 0.1.0 catalogue (the library updated, ALTER EXTENSION
    // UPDATE not run yet) has no such column, and every model there is stretched.
    Datum pad = spi::column(row, 11, &isnull);
    out->resize = !isnull && DatumGetBool(pad) ? Resize::kPad : Resize::kStretch;
    // input_width (0.2.0) likewise: NULL or absent, a square input.
    Datum width = spi::column(row, 12, &isnull);
    out->input_width = isnull ? 0 : DatumGetInt32(width);
  }
  spi::finish();
  return row != nullptr;
}

bytea *stored_model_bytes(const char *name) {
  MemoryContext caller = CurrentMemoryContext;
  spi::connect();
  HeapTuple row = spi::select_by_key(
      "SELECT torchscript FROM lookalike.model_data WHERE name OPERATOR(pg_catalog.=) $1", name,
      "lookalike.model_data");
  bytea *result = row != nullptr ? spi::column_bytea_copy(row, 1, caller) : nullptr;
  spi::finish();
  return result;
}

Normalization normalization_of(const ModelRow &row) {
  Normalization n;
  n.input_size = row.input_size;
  n.input_width = row.input_width;
  n.resize = row.resize;
  for (int k = 0; k < 3; ++k) {
    n.mean[k] = row.mean[k];
    n.stddev[k] = row.stddev[k];
  }
  return n;
}

std::vector<char> stored_model_vector(const std::string &name) {
  bytea *data = pg::guarded([&] { return stored_model_bytes(name.c_str()); });
  if (data == nullptr)
    throw Error(sqlstate::kDataCorrupted,
                "model \"" + name + "\" has no path and no stored TorchScript",
                "lookalike.model_data has no row for it.");
  std::vector<char> bytes(VARDATA(data), VARDATA(data) + (VARSIZE(data) - VARHDRSZ));
  pg::guarded([&] { pfree(data); });
  return bytes;
}

CheckedModelBytes registered_model_bytes(const std::string &name, const ModelRow &row) {
  if (row.stored)
    return checked_stored_bytes("stored model \"" + name + "\"", stored_model_vector(name),
                                row.sha256);
  return checked_file_bytes(row.path, row.sha256,
                            pg::guarded([] { return model::max_model_bytes_setting(); }));
}

namespace {

// ---- C-style helpers (call PostgreSQL directly; run inside pg::guarded) ---------------------

bool same_registration(const ModelRow &a, const ModelRow &b) {
  return a.stored == b.stored && std::strcmp(a.path, b.path) == 0 &&
         std::strcmp(a.sha256, b.sha256) == 0 && a.input_size == b.input_size &&
         a.input_width == b.input_width && a.resize == b.resize &&
         std::memcmp(a.mean, b.mean, sizeof a.mean) == 0 &&
         std::memcmp(a.stddev, b.stddev, sizeof a.stddev) == 0 && a.dims == b.dims;
}

// The model to use: the argument, else lookalike.default_model. Returns a palloc'd string.
char *resolve_model_name(FunctionCallInfo fcinfo, int argno) {
  if (PG_NARGS() > argno && !PG_ARGISNULL(argno)) return text_to_cstring(PG_GETARG_TEXT_PP(argno));
  const char *def = model::default_model_setting();
  if (def == nullptr)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("no model named and lookalike.default_model is not set"),
                    errhint("Pass a model name, or SET lookalike.default_model to a model of "
                            "lookalike.models.")));
  return pstrdup(def);
}

// ---- settings, read in C++ frames through pg::guarded ----------------------------------------

int threads_now() {
  return pg::guarded([] { return model::threads_setting(); });
}
int64_t max_pixels_now() {
  return pg::guarded([] { return image::max_image_pixels(); });
}
int64_t max_model_bytes_now() {
  return pg::guarded([] { return model::max_model_bytes_setting(); });
}

// ---- the per-backend model cache --------------------------------------------------------------

struct CachedModel {
  ModelRow row;
  std::unique_ptr<Model> model;
  std::unique_ptr<Preprocessor> pre;
};

// Never destroyed: LibTorch objects are not torn down at backend exit.
std::map<std::string, CachedModel> &cache() {
  static auto *c = new std::map<std::string, CachedModel>();
  return *c;
}

// The loaded model registered as `name`. Reads the registration on every call (one indexed
// lookup); a changed registration (path, sha256, preprocessing) reloads the model, and every
// load checks the file's sha256 against the registration.
CachedModel &get_model(const std::string &name) {
  ModelRow row;
  bool found = pg::guarded([&] { return lookup_model(name.c_str(), &row); });
  if (!found)
    throw Error(sqlstate::kUndefinedObject, "model \"" + name + "\" is not registered", {},
                "See lookalike.models; a superuser registers models with "
                "lookalike.register_model().");
  auto &c = cache();
  auto it = c.find(name);
  if (it != c.end() && same_registration(it->second.row, row)) return it->second;
  if (it != c.end()) c.erase(it);
  CachedModel entry;
  entry.row = row;
  entry.pre = std::make_unique<Preprocessor>(normalization_of(row));
  configure_threads(threads_now());
  entry.model = Model::load_checked(registered_model_bytes(name, row));
  return c.emplace(name, std::move(entry)).first->second;
}

void check_dims(const CachedModel &m, int dims, const std::string &name) {
  if (dims != m.row.dims)
    throw Error(sqlstate::kExternalRoutineException,
                "model \"" + name + "\" returned " + std::to_string(dims) +
                    " dimensions; its registration says " + std::to_string(m.row.dims));
}

// The message of the image error behind e.
std::string image_error_message(const BatchImageError &e) {
  try {
    std::rethrow_exception(e.cause());
  } catch (const Error &inner) {
    return inner.what();
  } catch (const std::exception &inner) {
    return inner.what();
  }
}

[[noreturn]] void rethrow_image_error(const BatchImageError &e, const char *prefix) {
  try {
    std::rethrow_exception(e.cause());
  } catch (const Error &inner) {
    throw Error(inner.sqlstate(), prefix + std::string(inner.what()), inner.detail(), inner.hint());
  }
}

}  // namespace
}  // namespace lookalike::model

using namespace lookalike;
using namespace lookalike::model;

// lookalike._probe_model(path text, input_size int, mean real[], std real[], input_width int)
//   RETURNS TABLE(sha256 text, dims int, canonical_path text)
// Loads the file (superusers only: a TorchScript file is code), runs one forward pass.
LOOKALIKE_FUNCTION(lookalike_probe_model) {
  bool super = pg::guarded([] { return superuser(); });
  if (!super)
    throw Error(sqlstate::kInsufficientPrivilege, "only superusers may register models",
                "A TorchScript file is code that runs inside the server.");
  for (int i = 0; i < 4; ++i)
    if (PG_ARGISNULL(i))
      throw Error(sqlstate::kInvalidParameterValue, "arguments must not be null");
  std::string path(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); }));
  if (path.empty() || path[0] != '/')
    throw Error(sqlstate::kInvalidParameterValue, "model path must be absolute",
                "The server reads the file; \"" + path + "\" is not an absolute path.");
  if (path.size() >= MAXPGPATH)
    throw Error(sqlstate::kInvalidParameterValue, "model path is too long");
  Normalization n;
  n.input_size = PG_GETARG_INT32(1);
  if (PG_NARGS() > 4 && !PG_ARGISNULL(4)) {
    n.input_width = PG_GETARG_INT32(4);
    // 0 means "a square" inside; a registration says so with NULL.
    if (n.input_width == 0)
      throw Error(sqlstate::kInvalidParameterValue, "input width 0 is out of range",
                  "Leave input_width NULL for a square input.");
  }
  for (int a = 0; a < 2; ++a) {
    float *dst = a == 0 ? n.mean : n.stddev;
    bool ok = pg::guarded([&] {
      ArrayType *arr = PG_GETARG_ARRAYTYPE_P(2 + a);
      if (ARR_NDIM(arr) != 1 || ARR_DIMS(arr)[0] != 3 || ARR_HASNULL(arr) ||
          ARR_ELEMTYPE(arr) != FLOAT4OID)
        return false;
      std::memcpy(dst, ARR_DATA_PTR(arr), 3 * sizeof(float));
      return true;
    });
    if (!ok)
      throw Error(sqlstate::kInvalidParameterValue, std::string(a == 0 ? "mean" : "std") +
                                                        " must be an array of 3 numbers (R, G, B)");
  }
  check_normalization(n);
  configure_threads(threads_now());
  // Registered as its canonical path: the catalogue names the file that was hashed, not a
  // symbolic link or a path with ".." that may later lead elsewhere.
  path = canonical_path(path);
  std::unique_ptr<Model> m = Model::load(path, "", max_model_bytes_now());
  int dims = m->probe_dims(n);
  if (dims > kMaxDims)
    throw Error(sqlstate::kProgramLimitExceeded,
                "model output has " + std::to_string(dims) + " dimensions",
                "An embedding has at most " + std::to_string(kMaxDims) + " dimensions.");
  std::string sha = m->sha256();
  return pg::guarded([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    // 0.1.0's declaration has two OUT columns (no canonical_path): heap_form_tuple reads only
    // desc->natts values, so a database not yet upgraded gets (sha256, dims) as before.
    Datum values[3] = {CStringGetTextDatum(sha.c_str()), Int32GetDatum(dims),
                       CStringGetTextDatum(path.c_str())};
    bool nulls[3] = {false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}

// image_embedding(image bytea, model text DEFAULT NULL) RETURNS embedding
LOOKALIKE_FUNCTION(image_embedding) {
  if (PG_ARGISNULL(0)) PG_RETURN_NULL();
  bytea *img = pg::guarded([&] { return PG_GETARG_BYTEA_PP(0); });
  std::string name(pg::guarded([&] { return resolve_model_name(fcinfo, 1); }));
  CachedModel &m = get_model(name);
  configure_threads(threads_now());
  EncodedImage enc{reinterpret_cast<const uint8_t *>(VARDATA_ANY(img)), VARSIZE_ANY_EXHDR(img)};
  std::vector<float> input, out;
  try {
    prepare_batch(*m.pre, &enc, 1, max_pixels_now(), input);
  } catch (const BatchImageError &e) {
    rethrow_image_error(e, "");
  }
  int dims = m.model->forward(input.data(), 1, m.pre->height(), m.pre->width(), out);
  check_dims(m, dims, name);
  return pg::guarded([&] { return PointerGetDatum(new_embedding(dims, out.data())); });
}

namespace {

// State of one image_embeddings() run, in plain C++ (the PostgreSQL handles are plain pointers).
struct BatchRun {
  Portal portal = nullptr;
  MemoryContext batch_cxt = nullptr;
  spi::ResultSet result{nullptr, nullptr};
  Oid id_type = InvalidOid;  // of the query's id column
  double estimated_rows = 0;
  int64_t done = 0;
};

void check_query_columns(TupleDesc desc) {
  bool ok = desc->natts == 2;
  if (ok) {
    Oid id = TupleDescAttr(desc, 0)->atttypid, image = TupleDescAttr(desc, 1)->atttypid;
    ok = (id == INT2OID || id == INT4OID || id == INT8OID) && image == BYTEAOID;
  }
  if (!ok)
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("image_embeddings() query must return two columns: id (smallint, "
                           "integer or bigint) and image (bytea)")));
}

int64 id_value(Datum d, Oid type) {
  switch (type) {
    case INT2OID:
      return DatumGetInt16(d);
    case INT4OID:
      return DatumGetInt32(d);
    default:
      return DatumGetInt64(d);
  }
}

// Connects SPI, opens a cursor over the query (checking its columns; the planner's row estimate
// kept for the progress notices) and creates the per-batch memory context.
void open_query(BatchRun &run, const std::string &query) {
  pg::guarded([&] {
    spi::connect();
    run.portal = spi::open_cursor(query.c_str(), false);
    check_query_columns(run.portal->tupDesc);
    run.estimated_rows = spi::estimated_rows(run.portal);
    run.batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "image_embeddings batch",
                                          ALLOCSET_DEFAULT_SIZES);
    run.id_type = TupleDescAttr(run.portal->tupDesc, 0)->atttypid;
  });
}

// The rows of one fetch: ids and the images (detoasted into the batch context).
struct Batch {
  int n = 0;
  std::vector<int64_t> ids;
  std::vector<char> id_null, image_null;
  std::vector<EncodedImage> images;
  std::vector<int> image_row;  // row of each image in `images`
};

// Fetches up to `size` rows of the cursor into b (the previous batch's memory is reset).
// Returns the number of rows; 0 at the end.
int fetch_batch(BatchRun &run, int size, Batch &b) {
  const int n = int(pg::guarded([&] {
    CHECK_FOR_INTERRUPTS();
    MemoryContextReset(run.batch_cxt);
    return spi::fetch(run.portal, size);
  }));
  b.n = n;
  b.ids.assign(size_t(n), 0);
  b.id_null.assign(size_t(n), 0);
  b.image_null.assign(size_t(n), 0);
  b.images.clear();
  b.image_row.clear();
  for (int i = 0; i < n; ++i) {
    pg::guarded([&] {
      HeapTuple row = spi::fetched(uint64(i));
      bool isnull;
      Datum id = spi::column(row, 1, &isnull);
      b.id_null[size_t(i)] = isnull;
      if (!isnull) b.ids[size_t(i)] = id_value(id, run.id_type);
      Datum img = spi::column(row, 2, &isnull);
      b.image_null[size_t(i)] = isnull;
      if (!isnull) {
        MemoryContext old = MemoryContextSwitchTo(run.batch_cxt);
        bytea *bytes = DatumGetByteaPP(img);  // detoasted into the batch context
        MemoryContextSwitchTo(old);
        b.images.push_back(
            {reinterpret_cast<const uint8_t *>(VARDATA_ANY(bytes)), VARSIZE_ANY_EXHDR(bytes)});
      }
    });
    if (!b.image_null[size_t(i)]) b.image_row.push_back(i);
  }
  return n;
}

// Decodes and preprocesses the batch's images into input. An image that cannot be decoded stops
// the statement, naming its row; with null_on_error its row gets a NULL embedding instead (a
// WARNING names it) and the rest of the batch goes on.
void prepare_images(const CachedModel &m, Batch &b, int64_t max_pixels, bool null_on_error,
                    std::vector<float> &input) {
  for (bool prepared = b.images.empty(); !prepared;) {
    std::string warning;
    try {
      prepare_batch(*m.pre, b.images.data(), int(b.images.size()), max_pixels, input);
      prepared = true;
    } catch (const BatchImageError &e) {
      int row = b.image_row[size_t(e.index())];
      std::string where = b.id_null[size_t(row)]
                              ? std::string("image of the row with a null id: ")
                              : "image of row id " + std::to_string(b.ids[size_t(row)]) + ": ";
      if (!null_on_error) rethrow_image_error(e, where.c_str());
      warning = "image_embeddings: " + where + image_error_message(e) + " (its embedding is NULL)";
      b.image_null[size_t(row)] = 1;
      b.images.erase(b.images.begin() + e.index());
      b.image_row.erase(b.image_row.begin() + e.index());
      prepared = b.images.empty();
    }
    if (!warning.empty())  // raised outside the catch block
      pg::guarded([&] { ereport(WARNING, (errmsg_internal("%s", warning.c_str()))); });
  }
}

// Puts the batch's rows into the result (embeddings of `dims` components, in the order of the
// images, from out) and frees the fetched tuples.
void put_rows(BatchRun &run, const Batch &b, int dims, const std::vector<float> &out) {
  pg::guarded([&] {
    MemoryContext old = MemoryContextSwitchTo(run.batch_cxt);
    size_t k = 0;
    for (int i = 0; i < b.n; ++i) {
      Datum values[2];
      bool nulls[2] = {b.id_null[size_t(i)] != 0, b.image_null[size_t(i)] != 0};
      values[0] = nulls[0] ? Datum(0) : Int64GetDatum(b.ids[size_t(i)]);
      values[1] = nulls[1] ? Datum(0)
                           : PointerGetDatum(new_embedding(dims, out.data() + k++ * size_t(dims)));
      run.result.put(values, nulls);
    }
    MemoryContextSwitchTo(old);
    spi::free_fetched();
  });
}

// Every `interval` seconds (0: never) a NOTICE with the images done, the rate and, from the
// planner's row estimate, the time left.
class Progress {
 public:
  explicit Progress(int64 interval) : interval_(interval), start_(clock::now()), last_(start_) {}
  void report(const BatchRun &run) {
    const auto now = clock::now();
    if (interval_ <= 0 || now - last_ < std::chrono::seconds(interval_)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? double(run.done) / secs : 0;
    char eta[64] = "";
    if (run.estimated_rows > double(run.done) && rate > 0)
      snprintf(eta, sizeof eta, ", about %.0f s left (planner estimate: %.0f rows)",
               (run.estimated_rows - double(run.done)) / rate, run.estimated_rows);
    int64_t done = run.done;
    pg::guarded([&] {
      ereport(NOTICE, (errmsg("image_embeddings: %lld images in %.1f s, %.1f images/s%s",
                              static_cast<long long>(done), secs, rate, eta)));
    });
  }

 private:
  using clock = std::chrono::steady_clock;
  int64 interval_;
  clock::time_point start_, last_;
};

}  // namespace

// image_embeddings(query text, model text DEFAULT NULL, on_error text DEFAULT 'error')
//   RETURNS TABLE(id bigint, embedding embedding)
// Runs `query` (rows of id, image) through a cursor and embeds lookalike.batch_size images per
// forward pass. on_error 'error': an image that cannot be decoded stops the statement (the error
// names its row); 'null': its row is returned with a NULL embedding and a WARNING names it.
LOOKALIKE_FUNCTION(image_embeddings) {
  if (PG_ARGISNULL(0)) throw Error(sqlstate::kInvalidParameterValue, "query must not be null");
  std::string query(pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); }));
  std::string name(pg::guarded([&] { return resolve_model_name(fcinfo, 1); }));
  std::string on_error = "error";
  if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
    on_error = pg::guarded([&] { return text_to_cstring(PG_GETARG_TEXT_PP(2)); });
  if (on_error != "error" && on_error != "null")
    throw Error(sqlstate::kInvalidParameterValue,
                "on_error must be 'error' or 'null', not '" + on_error + "'");
  const bool null_on_error = on_error == "null";
  BatchRun run;
  pg::guarded([&] { run.result = spi::materialize(fcinfo); });
  CachedModel &m = get_model(name);
  // lookalike.batch_size, at most lookalike.max_batch_size (superuser): bounds the memory.
  const int batch = pg::guarded([] { return model::batch_size_setting(); });
  const int64 interval = pg::guarded([] { return model::progress_interval_setting(); });
  const int64_t max_pixels = max_pixels_now();
  configure_threads(threads_now());
  TensorHeap heap;  // freed activations stay in the heap until the call ends
  open_query(run, query);
  Batch b;
  std::vector<float> input, out;
  Progress progress(interval);
  while (fetch_batch(run, batch, b) > 0) {
    pg::guarded([] { CHECK_FOR_INTERRUPTS(); });
    prepare_images(m, b, max_pixels, null_on_error, input);
    int dims = m.row.dims;
    if (!b.images.empty()) {
      pg::guarded([] { CHECK_FOR_INTERRUPTS(); });
      dims = m.model->forward(input.data(), int(b.images.size()), m.pre->height(), m.pre->width(),
                              out);
      check_dims(m, dims, name);
    }
    put_rows(run, b, dims, out);
    run.done += b.n;
    progress.report(run);
  }
  pg::guarded([&] {
    spi::close_cursor(run.portal);
    spi::finish();
  });
  return Datum(0);
}
