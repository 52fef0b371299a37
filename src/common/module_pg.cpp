// The extension's shared library: module magic and _PG_init. _PG_init only defines settings
// (GUCs); it creates no thread and loads no model (models load lazily in each backend).
#include "common/constants.hpp"
#include "common/guard_pg.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace {

// lookalike.max_image_pixels: the decompression-bomb guard of the image functions
// (lookalike_image.so and lookalike_model.so read it with GetConfigOption). PGC_SUSET: changing a
// denial-of-service guard is a superuser's decision, or that of a role granted
// SET ON PARAMETER lookalike.max_image_pixels (PostgreSQL 15); see docs/image.md.
int max_image_pixels = static_cast<int>(lookalike::kDefaultMaxImagePixels);

}  // namespace

void _PG_init(void) {
  DefineCustomIntVariable(
      "lookalike.max_image_pixels",
      "Largest image, in pixels (width x height), that the image functions decode.",
      "Guards against decompression bombs: larger images are refused before decoding.",
      &max_image_pixels, static_cast<int>(lookalike::kDefaultMaxImagePixels), 1,
      static_cast<int>(lookalike::kMaxImagePixelsLimit), PGC_SUSET, 0, nullptr, nullptr, nullptr);
  MarkGUCPrefixReserved("lookalike");
}
