// The image functions' settings (GUCs). Every setting of lookalike is defined by lookalike.so's
// _PG_init, so that SET and postgresql.conf accept it before lookalike_image.so or
// lookalike_model.so is loaded and the "lookalike" prefix can be reserved; this file is therefore
// part of the core archive that all three libraries link (Makefile). Both libraries read the
// value by name.
#pragma once

#include "common/pg.hpp"
#include "image/settings.hpp"

namespace lookalike::image {

// Defines lookalike.max_image_pixels; called once, from _PG_init.
void define_settings();
// The current lookalike.max_image_pixels. C-style (calls GetConfigOption, owns no C++ resource).
int64 max_image_pixels();

}  // namespace lookalike::image
