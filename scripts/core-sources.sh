#!/bin/sh
# The one statement of lookalike's core rule, read by the Makefile, CMakeLists.txt and
# test/check_layout.sh:
#
#   a source file under src/ whose name does not end in _pg.cpp / _pg.hpp is pure C++ core:
#   it includes no PostgreSQL header (src/common/pg.hpp, the only way in, refuses to compile
#   under LOOKALIKE_PURE_CORE), and it is built into the core archive that the three shared
#   libraries and the unit tests link.
#
#   scripts/core-sources.sh          the core's .cpp files (one per line, sorted)
#   scripts/core-sources.sh headers  the core's .hpp files
# Paths are relative to the repository root; run from anywhere.
cd "$(dirname "$0")/.." || exit 1
case "${1:-sources}" in
  sources) find src -name '*.cpp' ! -name '*_pg.cpp' | LC_ALL=C sort ;;
  headers) find src -name '*.hpp' ! -name '*_pg.hpp' ! -path src/common/pg.hpp | LC_ALL=C sort ;;
  *) echo "usage: $0 [sources|headers]" >&2; exit 2 ;;
esac
