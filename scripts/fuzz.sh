#!/usr/bin/env bash
# Builds the libFuzzer harnesses (test/fuzz/, clang + ASan + UBSan) into build/fuzz and runs each
# target for FUZZ_SECONDS seconds (default 25), starting from its checked-in seed corpus plus
# what earlier runs found (build/fuzz/corpus/<target>/). Prints one line per target,
# "ok fuzz_<target> ..." or "not ok fuzz_<target>: ...", and a JSON line of figures per target.
# A crash, sanitizer report, unexpected SQLSTATE, timeout (FUZZ_TIMEOUT s per input) or
# out-of-memory leaves its reproducer in build/fuzz/artifacts/ and makes the target fail;
# re-run one input with:  build/fuzz/<target>_fuzz build/fuzz/artifacts/<file>
#   scripts/fuzz.sh                   every target, 25 s each (make test)
#   FUZZ_SECONDS=600 scripts/fuzz.sh  longer (make fuzz)
#   scripts/fuzz.sh image_decode      one target
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-25}
timeout=${FUZZ_TIMEOUT:-20}
out=$root/build/fuzz
targets=${*:-embedding_text embedding_binary image_header image_decode}
mkdir -p "$out/artifacts" "$out/logs"
fail=0

if ! { CXX=${FUZZ_CXX:-clang++} cmake -S test/fuzz -B "$out" >"$out/logs/build.log" 2>&1 &&
       cmake --build "$out" -j"${FUZZ_JOBS:-2}" >>"$out/logs/build.log" 2>&1; }; then
  tail -30 "$out/logs/build.log"
  for t in $targets; do echo "not ok fuzz_$t: build failed (build/fuzz/logs/build.log)"; done
  exit 1
fi

for t in $targets; do
  bin=$out/${t}_fuzz
  work=$out/corpus/$t
  mkdir -p "$work"
  dict=()
  [ -f "test/fuzz/$t.dict" ] && dict=(-dict="test/fuzz/$t.dict")
  log=$out/logs/$t.log
  # New inputs go to the first directory (build/), the checked-in seeds stay as they are.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" "${dict[@]}" \
    "$work" "test/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  inputs=$(ls "$work" | wc -l)
  # "outcomes: ok=N 22P02=N ..." (printed by the target at exit) as a JSON object.
  outcomes=$(grep -E '^outcomes:' "$log" | tail -1 | sed -E 's/^outcomes: *//; s/([^ =]+)=([0-9]+)/"\1":\2/g; s/ /,/g')
  printf '{"fuzz_target":"%s","seconds":%s,"inputs_tried":%s,"coverage_edges":%s,"corpus_size":%s,"outcomes":{%s},"exit":%s,"load":"%s"}\n' \
    "$t" "$seconds" "${runs:-0}" "${cov:-0}" "$inputs" "$outcomes" "$rc" "$(cut -d' ' -f1-3 /proc/loadavg)" |
    tee -a "$out/figures.jsonl" >"$out/last-$t.json"
  if [ "$rc" = 0 ]; then
    echo "ok fuzz_$t (${runs:-?} inputs in ${seconds} s, ${cov:-?} edges, corpus $inputs; {$outcomes})"
  else
    fail=1
    artifact=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //')
    echo "not ok fuzz_$t: exit $rc, reproducer ${artifact:-none} (log build/fuzz/logs/$t.log)"
    grep -E 'ERROR: |SUMMARY|unexpected SQLSTATE|property violated|runtime error' "$log" | head -5 | sed 's/^/    /'
  fi
done
exit $fail
