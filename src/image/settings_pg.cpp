#include "image/settings_pg.hpp"

#include "common/settings_pg.hpp"

namespace lookalike::image {
namespace {
int max_image_pixels_value = static_cast<int>(kDefaultMaxImagePixels);
}

void define_settings() {
  // PGC_SUSET: changing a denial-of-service guard is a superuser's decision, or that of a role
  // granted SET ON PARAMETER lookalike.max_image_pixels (PostgreSQL 15); see docs/image.md.
  DefineCustomIntVariable(
      kMaxImagePixelsName,
      "Largest image, in pixels (width x height), that the image functions decode.",
      "Guards against decompression bombs: larger images are refused before decoding.",
      &max_image_pixels_value, static_cast<int>(kDefaultMaxImagePixels), 1,
      static_cast<int>(kMaxImagePixelsLimit), PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

int64 max_image_pixels() { return pg::setting_int(kMaxImagePixelsName, kDefaultMaxImagePixels); }

}  // namespace lookalike::image
