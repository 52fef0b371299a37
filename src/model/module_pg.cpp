// lookalike_model.so: module magic. Loads lookalike.so first, which defines every setting.
#include "common/guard_pg.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

void _PG_init(void) { load_file("$libdir/lookalike", false); }
