// The header fence: the only way C++ code includes PostgreSQL headers.
//
// Rules (see docs/architecture.md):
//  - Only files named *_pg.cpp include this header; the pure core (everything else under src/)
//    is compiled by CMake with LOOKALIKE_PURE_CORE defined and without PostgreSQL's include
//    path, so a pure file that reaches for a PostgreSQL header does not build.
//  - Include it LAST, after every standard, OpenCV or LibTorch header: PostgreSQL's port.h
//    redefines printf, snprintf, strerror and friends as macros, which would break any C++
//    library header read after it.
#pragma once

#ifdef LOOKALIKE_PURE_CORE
#error "common/pg.hpp included from the pure C++ core: keep PostgreSQL out of it"
#endif

// Every library is compiled with -fvisibility=hidden: only what PostgreSQL looks up by name (the
// PG_FUNCTION_INFO_V1 entry points, the module magic, _PG_init) is exported. PostgreSQL 15's c.h
// leaves PGDLLEXPORT empty on ELF platforms unless it is defined first.
#ifndef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))
#endif

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
}

// c.h defines these as function-like macros; they collide with C++ identifiers of the same name.
#ifdef Abs
#undef Abs
#endif
