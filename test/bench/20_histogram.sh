#!/usr/bin/env bash
# Benchmark: color_histogram() over the 6,217 images of $SHARED/data/fashion, against the
# reference's histogram loop (study_reference.histograms: cv2.imread + resize + calcHist in
# Python), measured in the same run on the same images.
# Needs a running server with lookalike installed, reached through PGHOST/PGPORT/PGUSER/
# PGDATABASE (scripts/bench.sh sets them), and SHARED. Runs standalone too:
#   PGHOST=... PGPORT=... PGDATABASE=bench SHARED=../shared test/bench/20_histogram.sh
# Prints one JSON line. Environment: REPEAT (timed passes of each side, best kept; default 5),
# BINS (8).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$root/../shared}
SHARED=$(cd "$SHARED" && pwd)
data=$SHARED/data/fashion
repeat=${REPEAT:-5}
bins=${BINS:-8}
n=$(($(wc -l <"$data/subset.csv") - 1))
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# Load the images into a table (the bytes travel from this client, so the server needs no access
# to $SHARED). One INSERT per image through psql's \set of a file is slow; COPY of hex is fast.
psql_q -c "CREATE EXTENSION IF NOT EXISTS lookalike" >/dev/null
psql_q -c "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_images; CREATE TABLE bench_images (id int PRIMARY KEY, img bytea)"
/usr/bin/python3 - "$data" <<'PY' | psql_q -c "COPY bench_images FROM STDIN"
import csv, os, sys
data = sys.argv[1]
for r in csv.DictReader(open(os.path.join(data, "subset.csv"))):
    b = open(os.path.join(data, "images", f"{r['id']}.jpg"), "rb").read()
    sys.stdout.write(f"{r['id']}\t\\\\x{b.hex()}\n")
PY
psql_q -c "VACUUM ANALYZE bench_images"
loaded=$(psql_q -c "SELECT count(*) FROM bench_images")
[ "$loaded" = "$n" ] || { echo "loaded $loaded images, expected $n" >&2; exit 1; }

# Ours and the reference's loop take turns, $repeat passes each, and the best pass of each
# counts: on a shared machine a load change then hits both sides alike. Each of our passes is a
# new session that first warms up (loads lookalike_image.so, reads 300 rows), then times one
# statement over all the images in one backend (no parallel workers).
ours_pass() {
  psql_q <<SQL | tail -1
SET max_parallel_workers_per_gather = 0;
SELECT count(color_histogram(img, $bins)) FROM (SELECT img FROM bench_images LIMIT 300) s;
CREATE TEMP TABLE t (s float8);
DO \$\$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  PERFORM count(color_histogram(img, $bins)) FROM bench_images;
  INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0));
END \$\$;
SELECT s FROM t;
SQL
}
# One pass of study_reference.histograms over the same images (imports and 200 images first).
ref_pass() {
  /usr/bin/python3 - "$SHARED" "$data" "$bins" <<'PY'
import os, sys, time
shared, data, bins = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, os.path.join(shared, "reference"))
import study_reference
ids, _ = study_reference.load(data)
study_reference.histograms(data, ids[:200], bins)
t = time.perf_counter()
study_reference.histograms(data, ids, bins)
print(time.perf_counter() - t)
PY
}
best_of_interleaved "$repeat" ours_pass ref_pass
psql_q -c "DROP TABLE bench_images"
awk -v n="$n" -v ours="$ours" -v ref="$ref" -v bins="$bins" 'BEGIN {
  v = n / ours; r = n / ref;
  printf "{\"name\": \"histogram\", \"what\": \"color_histogram(img, %d) over %d fashion images, one backend\", \"value\": %.1f, \"unit\": \"images/s\", \"reference\": \"study_reference.histograms (python3 + cv2, same images, same run)\", \"reference_value\": %.1f, \"ratio\": %.3f}\n", bins, n, v, r, v / r }'
