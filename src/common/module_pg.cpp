// The extension's shared library: module magic and _PG_init. _PG_init only defines settings
// (GUCs); it creates no thread and loads no model (models load lazily in each backend).
#include "common/guard_pg.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

void _PG_init(void) { MarkGUCPrefixReserved("lookalike"); }
