#!/usr/bin/env bash
# Runs every test of lookalike, in order: unit tests (CMake + GoogleTest via ctest), pg_regress
# and TAP tests against throwaway clusters that this script starts and stops itself. It needs no
# running server and does not write to the system's PostgreSQL directories: the extension is
# installed into a private tree (scripts/pg-tree.sh). As root, the server-side steps run as the
# unprivileged `postgres` user (PostgreSQL refuses to run as root).
#   scripts/test-all.sh            everything
#   scripts/test-all.sh unit       unit tests only
#   scripts/test-all.sh regress    pg_regress only (after building)
#   scripts/test-all.sh tap        TAP tests only (after building)
#   scripts/test-all.sh sanitize   unit tests built with ASan + UBSan (build/unit-asan)
#   scripts/test-all.sh fuzz       every libFuzzer target for FUZZ_SECONDS (default 25) each
# Ends with one line "tests: N passed, N failed, N skipped" (a skipped test -- GTEST_SKIP, a TAP
# skip_all or skip -- is neither passed nor failed). The tests read the data and models of
# $SHARED (default ../shared); where it is missing, every test that needs it fails, naming it.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-all}
export SHARED=${SHARED:-$root/../shared}
SHARED=$(cd "$SHARED" 2>/dev/null && pwd -P || echo "$SHARED")
pgxs_dir=$(dirname "$(pg_config --pgxs)")/..
passed=0
skipped=0
failed=0
status=0
out=$root/build/test
mkdir -p "$out"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env "PATH=$PATH" "SHARED=$SHARED" "LOOKALIKE_ROOT=$root" "$@"; else LOOKALIKE_ROOT=$root "$@"; fi
}
own_dir() {  # a directory the server-side user can write
  rm -rf "$1"
  mkdir -p "$1"
  [ "$(id -u)" = 0 ] && chown -R postgres "$1"
  return 0
}

run_unit() {
  echo "== unit tests (ctest)"
  cmake -S "$root" -B "$root/build/unit" -DLOOKALIKE_SHARED_DIR="$SHARED" >"$out/cmake.log" 2>&1 &&
    cmake --build "$root/build/unit" -j"$(nproc)" >>"$out/cmake.log" 2>&1 ||
    { tail -40 "$out/cmake.log"; failed=$((failed + 1)); status=1; return; }
  ctest --test-dir "$root/build/unit" --output-on-failure -j"$(nproc)" 2>&1 | tee "$out/ctest.log"
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$out/ctest.log" | tail -1)
  local total fail
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  fail=$(sed -E 's/.*, ([0-9]+) tests failed.*/\1/' <<<"$line")
  [ -n "$total" ] || { total=1; fail=1; }
  # ctest counts a GTEST_SKIP among the passed; it lists each as "(Skipped)" at the end.
  local skip
  skip=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)$' "$out/ctest.log")
  skipped=$((skipped + skip))
  passed=$((passed + total - fail - skip))
  failed=$((failed + fail))
  [ "$fail" = 0 ] || status=1
}

# The same unit tests, built with AddressSanitizer + UndefinedBehaviorSanitizer (any report aborts
# and fails the run). One process (loading LibTorch under ASan costs seconds per process, so not
# one per test as ctest does); counted separately from the plain run. The four largest sizing
# tests are left out by default (~2.5 of 3 minutes here; same code paths as the smaller ones):
# SANITIZE_FILTER='*' runs them all.
run_sanitize() {
  echo "== unit tests under ASan + UBSan (build/unit-asan)"
  local dir=$root/build/unit-asan flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  local filter=${SANITIZE_FILTER:--IndexHnsw.GraphRecallHardClustered512:IndexHnsw.ThreadedBuildMatchesSingleThread:IndexHnsw.RefineKeepsGraphValid:ImageDecode.AllFashionImagesDecodeLikeImread}
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
    -DLOOKALIKE_SHARED_DIR="$SHARED" >"$out/cmake-asan.log" 2>&1 &&
    cmake --build "$dir" -j"$(nproc)" --target unit_tests >>"$out/cmake-asan.log" 2>&1 ||
    { tail -40 "$out/cmake-asan.log"; failed=$((failed + 1)); status=1; return; }
  local rc
  (cd "$dir" && ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=print_stacktrace=1 \
    ./unit_tests --gtest_filter="$filter" --gtest_brief=1) >"$out/unit-asan.log" 2>&1
  rc=$?
  local ok bad skip
  ok=$(grep -oE '^\[  PASSED  \] [0-9]+ test' "$out/unit-asan.log" | grep -oE '[0-9]+' || true)
  bad=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$out/unit-asan.log" | grep -oE '[0-9]+' || true)
  skip=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$out/unit-asan.log" | grep -oE '[0-9]+' || true)
  ok=${ok:-0}
  bad=${bad:-0}
  skipped=$((skipped + ${skip:-0}))
  if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then bad=1; fi  # a sanitizer abort: no summary line
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |runtime error|Sanitizer' "$out/unit-asan.log" | head -20
  [ "$bad" = 0 ] || { tail -40 "$out/unit-asan.log"; status=1; }
  echo "unit tests under sanitizers: $ok passed, $bad failed, ${skip:-0} skipped (log build/test/unit-asan.log)"
  passed=$((passed + ok))
  failed=$((failed + bad))
}

# libFuzzer targets (test/fuzz/), FUZZ_SECONDS each: one test per target.
run_fuzz() {
  echo "== fuzzing (libFuzzer + ASan + UBSan, ${FUZZ_SECONDS:-25} s per target)"
  "$root/scripts/fuzz.sh" | tee "$out/fuzz.log"
  local ok bad
  ok=$(grep -c '^ok ' "$out/fuzz.log")
  bad=$(grep -c '^not ok ' "$out/fuzz.log")
  [ "$((ok + bad))" -gt 0 ] || bad=1
  passed=$((passed + ok))
  failed=$((failed + bad))
  [ "$bad" = 0 ] || status=1
}

build_ext() {
  make -s -j"$(nproc)" >"$out/make.log" 2>&1 || { tail -40 "$out/make.log"; exit 1; }
  bindir=$("$root/scripts/pg-tree.sh" "$root/build/pg")
  local ext_dir
  ext_dir="$root/build/pg$(pg_config --sharedir)/extension"  # the system's pg_config
  export PATH="$bindir:$PATH"
  # pgvector is not packaged for Debian 12: where the system has none, the private tree gets a
  # clearly named stand-in type `vector` (test/fixtures/pgvector_standin/) so that the tests of
  # the companion extension lookalike_pgvector run; with a real pgvector they use it instead.
  if [ ! -e "$ext_dir/vector.control" ]; then
    cp "$root"/test/fixtures/pgvector_standin/vector* "$ext_dir/"
  fi
}

run_layout() {
  echo "== layout checks"
  "$root/test/check_layout.sh" | tee "$out/layout.log"
  passed=$((passed + $(grep -c '^ok ' "$out/layout.log")))
  local bad
  bad=$(grep -c '^not ok ' "$out/layout.log")
  failed=$((failed + bad))
  [ "$bad" = 0 ] || status=1
}

run_regress() {
  echo "== pg_regress"
  local tests
  tests=$(cd sql && ls *.sql | sed 's/\.sql$//' | sort)
  own_dir "$out/regress"
  as_pg "$pgxs_dir/test/regress/pg_regress" --temp-instance="$out/regress/instance" \
    --bindir="$bindir" --inputdir="$root" --outputdir="$out/regress" \
    --temp-config="$root/test/regress.conf" --port=$((50000 + RANDOM % 10000)) \
    $tests 2>&1 | tee "$out/regress.log"
  local ok bad
  ok=$(grep -cE '^(ok|test) .* ok( |$)|^ok [0-9]+ ' "$out/regress.log")
  bad=$(grep -cE '\.\.\. FAILED|^not ok ' "$out/regress.log")
  if grep -q 'tests passed\|All [0-9]* tests passed' "$out/regress.log"; then :; elif [ "$bad" = 0 ]; then bad=1; fi
  passed=$((passed + ok))
  failed=$((failed + bad))
  if [ "$bad" != 0 ]; then
    status=1
    [ -f "$out/regress/regression.diffs" ] && head -200 "$out/regress/regression.diffs"
  fi
}

run_tap() {
  local tests
  tests=$(ls test/tap/*.pl 2>/dev/null || true)
  [ -n "$tests" ] || return 0
  echo "== TAP (prove)"
  own_dir "$out/tap"
  as_pg env TESTDIR="$out/tap" PG_REGRESS="$pgxs_dir/test/regress/pg_regress" \
    PGPORT=$((40000 + RANDOM % 10000)) SHARED="$SHARED" LOOKALIKE_ROOT="$root" \
    prove -v -I "$pgxs_dir/test/perl" -I "$root/test/tap" $tests >"$out/tap.log" 2>&1
  # -v so that each skipped test is listed ("ok N # skip why"); the console gets the rest.
  grep -vE '^[[:space:]]*(ok|not ok) [0-9]+' "$out/tap.log"
  local files tests_failed total
  total=$(grep -E '^Files=[0-9]+, Tests=[0-9]+' "$out/tap.log" | sed -E 's/.*Tests=([0-9]+).*/\1/')
  tests_failed=$(grep -E 'Failed [0-9]+/[0-9]+ subtests' "$out/tap.log" | sed -E 's/.*Failed ([0-9]+)\/.*/\1/' | paste -sd+ | bc 2>/dev/null)
  files=$(grep -cE '^t?.*\.pl .*(Dubious|Failed)|Wstat: [1-9]' "$out/tap.log")
  [ -n "$total" ] || total=0
  tests_failed=${tests_failed:-0}
  # Skipped: whole files (skip_all: "NAME.pl .. skipped: why", one each) and "ok N # skip why"
  # tests, which prove counts in Tests=.
  local skip_files skip_tests
  skip_files=$(grep -cE '\.pl \.+ skipped: ' "$out/tap.log")
  skip_tests=$(grep -cE '^ok [0-9]+ # (skip|SKIP)' "$out/tap.log")
  skipped=$((skipped + skip_files + skip_tests))
  total=$((total - skip_tests))
  if grep -q '^Result: PASS' "$out/tap.log"; then
    passed=$((passed + total))
  else
    status=1
    [ "$tests_failed" -gt 0 ] || tests_failed=$((files > 0 ? files : 1))
    passed=$((passed + total - tests_failed))
    failed=$((failed + tests_failed))
  fi
}

case "$what" in
  unit) run_unit ;;
  regress) build_ext; run_regress ;;
  tap) build_ext; run_tap ;;
  sanitize) run_sanitize ;;
  fuzz) run_fuzz ;;
  all) run_unit; run_sanitize; run_fuzz; build_ext; run_layout; run_regress; run_tap ;;
  *) echo "usage: $0 [all|unit|sanitize|fuzz|regress|tap]" >&2; exit 2 ;;
esac
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
