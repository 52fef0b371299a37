// foreground_color_histogram(image bytea, hue_bins integer DEFAULT 12,
//                            white_tolerance integer DEFAULT 20) RETURNS embedding
// (see foreground.hpp and extension/parts/25_foreground.sql).
#include <vector>

#include <opencv2/core.hpp>

#include "common/constants.hpp"
#include "image/decode.hpp"
#include "image/foreground.hpp"
#include "common/guard_pg.hpp"
#include "image/settings_pg.hpp"
#include "vector/embedding_pg.hpp"

using namespace lookalike;

LOOKALIKE_FUNCTION(foreground_color_histogram) {
  bytea *raw = nullptr;
  int64_t max_pixels = 0;
  image::ForegroundOptions opt;
  pg::guarded([&] {
    raw = PG_GETARG_BYTEA_PP(0);
    opt.hue_bins = PG_GETARG_INT32(1);
    opt.white_tolerance = PG_GETARG_INT32(2);
    max_pixels = image::max_image_pixels();
    CHECK_FOR_INTERRUPTS();
  });
  const auto *data = reinterpret_cast<const uint8_t *>(VARDATA_ANY(raw));
  const size_t len = VARSIZE_ANY_EXHDR(raw);
  std::vector<float> h;
  {
    cv::Mat bgr = image::decode_bgr(data, len, max_pixels);
    h = image::foreground_color_histogram(bgr, opt);
  }
  const int dim = static_cast<int>(h.size());
  return pg::guarded([&] { return PointerGetDatum(new_embedding(dim, h.data())); });
}
