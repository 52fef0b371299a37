// libFuzzer target: image_info's header parser and the container checks that run before any
// pixel is decoded (src/image/decode.cpp: read_header, check_structure). Properties: bad data
// raises 22P03 (or 54000) and nothing else; an accepted header names a known format and
// non-negative sides.
#include <cstdint>

#include "fuzz_common.hpp"
#include "image/decode.hpp"

using namespace lookalike;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  image::Header h;
  try {
    h = image::read_header(data, size);
  } catch (const Error &e) {
    fuzz::expect_sqlstate(e, {"22P03"});
    return 0;
  }
  if (h.format == image::Format::kUnknown) fuzz::fail("header of unknown format accepted");
  if (h.width < 0 || h.height < 0) fuzz::fail("negative side");
  try {
    image::check_structure(data, size, h);
  } catch (const Error &e) {
    fuzz::expect_sqlstate(e, {"22P03", "54000"});
    return 0;
  }
  fuzz::accepted();
  return 0;
}
