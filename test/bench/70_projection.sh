#!/usr/bin/env bash
# Benchmark: lookalike.fit_projection() -- covariance and eigendecomposition of ROWS vectors of
# DIMS dimensions, inside the database with lookalike's interruptible eigensolver -- against the
# same fit in numpy (covariance by a BLAS matrix product, np.linalg.eigh: LAPACK), measured in the
# same run on the same vectors with the same number of threads. numpy's time excludes reading the
# vectors (they are loaded into an array first); ours includes reading them from the table.
# Needs a running server with lookalike installed (scripts/bench.sh sets PGHOST/PGPORT/...).
# Prints one JSON line. Environment: ROWS (4000), DIMS (1280), THREADS (1: lookalike.threads and
# OPENBLAS/OMP threads of numpy), REPEAT (2 passes of each side, best kept).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
rows=${ROWS:-4000}
dims=${DIMS:-1280}
threads=${THREADS:-1}
repeat=${REPEAT:-2}
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# Vectors with a spread spectrum (a few strong directions, many weak ones), like embeddings.
psql_q <<SQL
CREATE EXTENSION IF NOT EXISTS lookalike;
DROP TABLE IF EXISTS bench_proj;
SELECT setseed(0.42);
CREATE TABLE bench_proj AS
  SELECT i AS id,
         array(SELECT (sin(i * 0.0137 * (1 + j % 11)) / (1 + j * 0.01) + 0.05 * random())::real
                 FROM generate_series(1, $dims) j)::embedding AS e
    FROM generate_series(1, $rows) i;
SQL

ours_pass() {
  psql_q <<SQL | tail -1
SET lookalike.threads = $threads;
SELECT lookalike.drop_projection('bench_fit') FROM lookalike.projections WHERE name = 'bench_fit';
CREATE TEMP TABLE t (s float8);
DO \$\$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  PERFORM lookalike.fit_projection('bench_fit', 'SELECT e FROM bench_proj');
  INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0));
END \$\$;
SELECT s FROM t;
SQL
}

# The reference: the same rows as a float64 array, then mean, covariance and eigh, timed.
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
vectors=$(mktemp)
trap 'rm -f "$vectors"' EXIT
psql_q -c "COPY (SELECT e FROM bench_proj ORDER BY id) TO STDOUT" >"$vectors"
ref_pass() {
  (cd / && /usr/bin/python3 - "$vectors" <<'PY'
import sys, time
import numpy as np
x = np.array([[float(v) for v in line.strip()[1:-1].split(",")] for line in open(sys.argv[1])],
             dtype=np.float64)
t = time.perf_counter()
m = x.mean(axis=0)
c = x.T @ x / len(x) - np.outer(m, m)
w, v = np.linalg.eigh((c + c.T) * 0.5)
print(time.perf_counter() - t)
PY
  )
}
best_of_interleaved "$repeat" ours_pass ref_pass
psql_q -c "SELECT lookalike.drop_projection('bench_fit'); DROP TABLE bench_proj" >/dev/null
load=$(cut -d' ' -f1 /proc/loadavg)
awk -v n="$rows" -v d="$dims" -v ours="$ours" -v ref="$ref" -v th="$threads" -v load="$load" 'BEGIN {
  v = n / ours; r = n / ref;
  printf "{\"name\": \"projection_fit\", \"what\": \"fit_projection of %d vectors of %d dims (covariance + eigendecomposition), lookalike.threads = %d\", \"value\": %.1f, \"unit\": \"rows/s\", \"reference\": \"numpy: x.T @ x and np.linalg.eigh (LAPACK), same vectors already in memory, %d thread(s), same run\", \"reference_value\": %.1f, \"ratio\": %.3f, \"seconds\": %.2f, \"reference_seconds\": %.2f, \"load\": %s}\n", n, d, th, v, th, r, v / r, ours, ref, load }'
