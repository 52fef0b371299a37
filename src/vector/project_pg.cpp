// project(e embedding, projection text): y = W (e - mean) with a projection stored in
// lookalike.projections (fitted by lookalike.fit_projection(); format in vector/projection.hpp).
// The projection is read once per query (cached in fn_extra, in the function's memory context),
// so the function is STABLE: a refit takes effect in the next statement. C-style code over
// palloc'd memory; projection::parse() throws lookalike::Error, which the entry point raises.
#include <cstring>

#include "common/errors.hpp"
#include "vector/embedding_pg.hpp"
#include "vector/projection.hpp"
#include "common/guard_pg.hpp"
#include "common/spi_pg.hpp"

using namespace lookalike;

namespace {

struct CachedProjection {
  char *name;
  bytea *data;  // in fn_mcxt, 4-byte header
  projection::View view;
  float *scratch;  // dims_in floats
};

// Reads the projection `name` into `cxt`; raises 42704 if there is none.
bytea *read_projection(const char *name, MemoryContext cxt) {
  spi::connect();
  HeapTuple row = spi::select_by_key(
      "SELECT data FROM lookalike.projections WHERE name OPERATOR(pg_catalog.=) $1", name,
      "lookalike.projections");
  if (row == nullptr)
    ereport(ERROR,
            (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("projection \"%s\" does not exist", name),
             errhint("See lookalike.projections; lookalike.fit_projection() creates one.")));
  bytea *copy = spi::column_bytea_copy(row, 1, cxt);  // data is NOT NULL
  spi::finish();
  return copy;
}

}  // namespace

LOOKALIKE_FUNCTION(embedding_project) {
  Embedding *e = PG_GETARG_EMBEDDING_P(0);
  char *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
  auto *c = static_cast<CachedProjection *>(fcinfo->flinfo->fn_extra);
  if (c == nullptr || std::strcmp(c->name, name) != 0) {
    MemoryContext cxt = fcinfo->flinfo->fn_mcxt;
    if (c == nullptr) {
      c = static_cast<CachedProjection *>(MemoryContextAllocZero(cxt, sizeof(CachedProjection)));
    } else {
      pfree(c->name);
      pfree(c->data);
      pfree(c->scratch);
      c->name = nullptr;
      fcinfo->flinfo->fn_extra = nullptr;
    }
    c->data = read_projection(name, cxt);
    c->view = projection::parse(reinterpret_cast<const uint8_t *>(VARDATA(c->data)),
                                VARSIZE(c->data) - VARHDRSZ);
    c->scratch = static_cast<float *>(MemoryContextAlloc(cxt, sizeof(float) * c->view.dims_in));
    c->name = MemoryContextStrdup(cxt, name);
    fcinfo->flinfo->fn_extra = c;
  }
  if (e->dim != c->view.dims_in)
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("projection \"%s\" takes %d dimensions, not %d", name, c->view.dims_in,
                           int(e->dim))));
  Embedding *r = new_embedding(c->view.dims_out);
  projection::apply(c->view, e->x, c->scratch, r->x);
  for (int i = 0; i < c->view.dims_out; ++i) check_finite(r->x[i]);
  PG_RETURN_POINTER(r);
}
