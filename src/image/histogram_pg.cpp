// SQL functions of lookalike_image.so: color_histogram(bytea, integer) and image_info(bytea).
//
// The entry points are C-style (no C++ objects with destructors in their frames): they read
// their arguments, detoast and palloc the result first, then call a C++ helper that owns the
// OpenCV images and calls no PostgreSQL function. A PostgreSQL error (detoasting, palloc) thus
// never unwinds over a cv::Mat, and a C++ exception from the helper frees every cv::Mat as it
// unwinds to the LOOKALIKE_FUNCTION boundary.
#include <cstdint>

#include <opencv2/core.hpp>

#include "common/constants.hpp"
#include "image/decode.hpp"
#include "image/histogram.hpp"
#include "common/guard_pg.hpp"
#include "image/settings_pg.hpp"
#include "vector/embedding_pg.hpp"

namespace lookalike {
namespace {

// Owns the decoded and resized images; calls no PostgreSQL function.
void histogram_of(const uint8_t *data, size_t len, int bins, int64_t max_pixels, float *out) {
  cv::Mat bgr = image::decode_bgr(data, len, max_pixels);
  image::color_histogram(bgr, bins, out);
}

}  // namespace
}  // namespace lookalike

using namespace lookalike;

LOOKALIKE_FUNCTION(color_histogram) {
  int32 bins = PG_GETARG_INT32(1);
  image::check_histogram_bins(bins);
  bytea *raw = PG_GETARG_BYTEA_PP(0);
  int64_t max_pixels = image::max_image_pixels();
  int dims = image::histogram_dims(bins);
  Embedding *result = new_embedding(dims);
  histogram_of(reinterpret_cast<const uint8_t *>(VARDATA_ANY(raw)), VARSIZE_ANY_EXHDR(raw), bins,
               max_pixels, result->x);
  PG_RETURN_POINTER(result);
}

LOOKALIKE_FUNCTION(image_info) {
  bytea *raw = PG_GETARG_BYTEA_PP(0);
  image::Header h = image::read_header(reinterpret_cast<const uint8_t *>(VARDATA_ANY(raw)),
                                       VARSIZE_ANY_EXHDR(raw));
  TupleDesc tupdesc;
  if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("image_info must be called in a context that accepts a record")));
  tupdesc = BlessTupleDesc(tupdesc);
  Datum values[3];
  bool nulls[3] = {false, false, false};
  values[0] = CStringGetTextDatum(image::format_name(h.format));
  values[1] = Int64GetDatum(h.width);
  values[2] = Int64GetDatum(h.height);
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
