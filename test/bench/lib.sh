# Shared by the benchmarks (sourced, not run: scripts/bench.sh runs only executable files).

# best_of_interleaved N OURS_FN REF_FN: runs OURS_FN and REF_FN in turn, N times each (so both
# sides see the same changes of the shared machine's load), each printing a time in seconds;
# sets $ours and $ref to the shortest time of each side.
best_of_interleaved() {
  local n=$1 ours_fn=$2 ref_fn=$3 o r
  ours= ref=
  for _ in $(seq "$n"); do
    o=$("$ours_fn")
    r=$("$ref_fn")
    ours=$(awk -v a="$ours" -v b="$o" 'BEGIN { print (a == "" || b < a) ? b : a }')
    ref=$(awk -v a="$ref" -v b="$r" 'BEGIN { print (a == "" || b < a) ? b : a }')
  done
}

# as_lookalike_runs CMD...: runs CMD (a command or a shell function) with glibc's malloc
# thresholds raised as lookalike's TensorHeap raises them during a call (src/model/runtime.hpp:
# mmap 256 MB, trim 512 MB), so that a Python reference keeps its freed activation buffers mapped
# as lookalike does (page faults are expensive on the 2-core VMs, docs/model.md): the reference at
# its best. OpenBLAS's OpenMP build (what scripts/setup-debian.sh installs) follows
# torch.set_num_threads in Python as it follows lookalike.threads; its pthread build, if that is
# the system's BLAS, is held to one thread as lookalike holds it (docs/model.md, "BLAS").
# The body is a subshell, so the export stays inside.
as_lookalike_runs() (
  if [[ $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null) == *openblas-pthread* ]]; then
    export OPENBLAS_NUM_THREADS=1
  fi
  MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912 "$@"
)
