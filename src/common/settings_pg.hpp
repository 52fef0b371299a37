// Reading lookalike's settings from any of its libraries. Every setting is defined by
// lookalike.so (src/lookalike_pg.cpp); lookalike_image.so and lookalike_model.so load it in
// their _PG_init and read the values by name.
#pragma once

#include "common/pg.hpp"

namespace lookalike::pg {

// The integer value of setting `name`, or `fallback` if it is not defined or not a number.
// C-style (calls GetConfigOption, owns no C++ resource).
int64 setting_int(const char *name, int64 fallback);

}  // namespace lookalike::pg
