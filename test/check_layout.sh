#!/usr/bin/env bash
# Structural checks, one line each ("ok NAME" / "not ok NAME: why"):
#  - the pure core (the files scripts/core-sources.sh lists: the one statement of the rule)
#    includes no PostgreSQL header;
#  - lookalike.so does not link LibTorch or OpenCV, lookalike_image.so does not link LibTorch
#    (a backend that only uses the type must not pay for them);
#  - each library exports only its PostgreSQL entry points, none of lookalike's C++ symbols (the
#    core archive's copies in the three libraries must never interpose);
#  - a folder of src/ includes only the folders docs/architecture.md's map allows;
#  - sources are clang-formatted (.clang-format).
# Run from the repository root after `make`.
set -uo pipefail
fail=0
check() {  # name, command...
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then echo "ok $name"; else echo "not ok $name: $out"; fail=1; fi
}
pure_has_no_pg() {
  local bad
  bad=$({ scripts/core-sources.sh sources; scripts/core-sources.sh headers; } |
        xargs grep -lE '#include *[<"](postgres|fmgr|common/pg|common/guard_pg|utils/|access/|catalog/|executor/|storage/|nodes/)' || true)
  [ -z "$bad" ] || { echo "$bad"; return 1; }
}
no_deps() {  # library, forbidden regex
  local hits
  hits=$(ldd "$1" | awk '{print $1}' | grep -E "^lib($2)" || true)
  [ -z "$hits" ] || { echo "$1 links: $hits"; return 1; }
}
exports_only_entry_points() {  # library: none of lookalike's C++ symbols is exported
  local cxx
  cxx=$(nm -D --defined-only "$1" | awk '$3 ~ /^_Z/ {print $3}' | c++filt | grep 'lookalike::' | head -5)
  [ -z "$cxx" ] || { echo "$1 exports: $cxx"; return 1; }
}
# Which other feature folders each folder of src/ may include (docs/architecture.md, "Map");
# every folder may include common/, src/lookalike_pg.cpp anything.
declare -A may_include=([common]="" [vector]="" [index]="vector" [image]="vector"
  [model]="image vector" [scaleout]="vector index" [interop]="vector")
folder_includes() {
  local bad="" d inc
  for d in src/*/; do
    d=$(basename "$d")
    [ -n "${may_include[$d]+set}" ] || { bad+="src/$d/ is not in the map; "; continue; }
    for inc in $(cat src/"$d"/*.[ch]pp | sed -nE 's|^#include "([a-z_]+)/.*|\1|p' | sort -u); do
      [ -d "src/$inc" ] && [ "$inc" != "$d" ] && [ "$inc" != common ] || continue
      [[ " ${may_include[$d]} " == *" $inc "* ]] || bad+="src/$d/ includes $inc/; "
    done
  done
  [ -z "$bad" ] || { echo "$bad"; return 1; }
}
formatted() {
  command -v clang-format >/dev/null || { echo "clang-format missing"; return 1; }
  find src tools test/unit test/fuzz -name '*.cpp' -o -name '*.hpp' | xargs clang-format --dry-run -Werror 2>&1 | head -20
  [ "${PIPESTATUS[1]}" = 0 ]
}
check pure_core_has_no_postgres_headers pure_has_no_pg
check folders_include_only_what_the_map_allows folder_includes
check lookalike_so_has_no_torch_or_opencv no_deps lookalike.so 'torch|c10|opencv'
check lookalike_image_so_has_no_torch no_deps lookalike_image.so 'torch|c10'
for lib in lookalike lookalike_image lookalike_model; do
  check "${lib}_so_exports_only_entry_points" exports_only_entry_points "$lib.so"
done
check sources_are_clang_formatted formatted
exit $fail
