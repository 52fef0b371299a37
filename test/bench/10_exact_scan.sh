#!/usr/bin/env bash
# Exact top-k: SELECT id FROM items ORDER BY e <=> q LIMIT 5 over 100,000 clustered unit vectors
# of 512 dimensions (seeded; test/bench/clustered.py), one client, queries/s with pgbench.
# The default plan is lookalike's exact top-k scan (src/vector/exact_scan_pg.cpp).
# References:
#  - measured in the same run: PostgreSQL's own plan for the same query on the same table
#    (lookalike.exact_scan = off: the distance of every row through the operator, then a sort);
#  - measured in the same run: the same table, data and kernels, but with the column stored the
#    way pgvector stores its vector type (each 2 KB value moved out of line into the TOAST
#    table: STORAGE EXTERNAL), so every row read also reads the TOAST table;
#  - published: pgvector 0.8.6's exact scan on the same kind of data on a 2-core machine,
#    5.2 queries/s (pgvector is not packaged for Debian 12 and cannot be fetched here);
#  - pgvector itself, measured in the same run, when the server has the `vector` extension.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE (make bench sets them). N, DIMS, SECONDS may be set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${N:-100000}
DIMS=${DIMS:-512}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
Q=100
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -c "DROP TABLE IF EXISTS bench_all, items, items_toasted, queries" >/dev/null
psql -c "CREATE UNLOGGED TABLE bench_all (id int, e embedding($DIMS))"
"$here/clustered.py" $((N + Q)) "$DIMS" --seed 1 | psql -c "COPY bench_all FROM STDIN (FORMAT binary)"
psql <<SQL
CREATE TABLE items (id int, e embedding($DIMS));
INSERT INTO items SELECT id, e FROM bench_all WHERE id <= $N;
CREATE TABLE items_toasted (id int, e embedding($DIMS));
ALTER TABLE items_toasted ALTER COLUMN e SET STORAGE EXTERNAL;
INSERT INTO items_toasted SELECT id, e FROM bench_all WHERE id <= $N;
CREATE TABLE queries AS SELECT id - $N AS qid, e FROM bench_all WHERE id > $N;
DROP TABLE bench_all;
VACUUM ANALYZE items, items_toasted, queries;
SQL

# Same answers from both layouts (exact scan is deterministic).
same=$(psql -At -c "SELECT bool_and(a = b) FROM queries q,
  LATERAL (SELECT array_agg(id ORDER BY d, id) a FROM (SELECT id, e <=> q.e d FROM items ORDER BY d, id LIMIT 5) s) x,
  LATERAL (SELECT array_agg(id ORDER BY d, id) b FROM (SELECT id, e <=> q.e d FROM items_toasted ORDER BY d, id LIMIT 5) s) y
  WHERE q.qid <= 5")
[ "$same" = t ] || { echo "exact scan: layouts disagree" >&2; exit 1; }
# The exact top-k scan returns rows at the same distances as PostgreSQL's plan.
topk_d() {
  psql -At -c "SELECT array_agg(d ORDER BY qid, r) FROM queries q, LATERAL (SELECT e <=> q.e AS d,
    row_number() OVER () r FROM (SELECT e FROM items ORDER BY e <=> q.e LIMIT 5) s) x WHERE q.qid <= 5"
}
[ "$(topk_d)" = "$(PGOPTIONS="-c lookalike.exact_scan=off" topk_d)" ] ||
  { echo "exact scan: custom scan and PostgreSQL's plan disagree" >&2; exit 1; }

run() {  # $1 table -> queries/s
  local f
  f=$(mktemp)
  printf '\\set q random(1, %d)\nSELECT id FROM %s ORDER BY e <=> (SELECT e FROM queries WHERE qid = :q) LIMIT 5;\n' "$Q" "$1" >"$f"
  # Warm cache: the table and (for the toasted layout) its TOAST table, in shared buffers.
  command psql -X -q -At -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" \
    -c "SELECT pg_prewarm('$1'), pg_prewarm(reltoastrelid) FROM pg_class WHERE oid = '$1'::regclass AND reltoastrelid <> 0" \
    -c "SELECT count(*) FROM $1 WHERE e <=> e IS NOT NULL" >/dev/null
  pgbench -n -c 1 -T "$SECONDS_PER_RUN" -f "$f" 2>/dev/null | sed -nE 's/^tps = ([0-9.]+) .*/\1/p'
  rm -f "$f"
}
ours=$(run items)
postgres_plan=$(PGOPTIONS="-c lookalike.exact_scan=off" run items)
toasted=$(run items_toasted)
# The same query with a serial plan (no parallel workers): the planner's choice on most machines
# (launching workers costs more than it saves, in the cost model and usually in fact).
serial=$(PGOPTIONS="-c max_parallel_workers_per_gather=0" run items)
# Context for the parallel plan: what one parallel worker costs on this machine, measured with a
# query that does no work (force_parallel_mode starts one worker for a one-row query).
tiny() {
  local f
  f=$(mktemp)
  printf 'SELECT qid FROM queries WHERE qid = 1;\n' >"$f"
  pgbench -n -c 1 -T 5 -f "$f" 2>/dev/null | sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p'
  rm -f "$f"
}
tiny_serial=$(tiny)
tiny_worker=$(PGOPTIONS="-c force_parallel_mode=on" tiny)
# pgvector itself, in the same run, when the server has it (not packaged for Debian 12).
pgv=""
if command psql -X -q -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null 2>&1; then
  psql -c "DROP TABLE IF EXISTS items_pgvector" -c "CREATE TABLE items_pgvector AS SELECT id, e::text::vector($DIMS) AS e FROM items" \
    -c "ALTER TABLE queries ADD COLUMN IF NOT EXISTS v vector($DIMS)" -c "UPDATE queries SET v = e::text::vector" -c "VACUUM ANALYZE items_pgvector, queries" >/dev/null
  f=$(mktemp)
  printf '\\set q random(1, %d)\nSELECT id FROM items_pgvector ORDER BY e <=> (SELECT v FROM queries WHERE qid = :q) LIMIT 5;\n' "$Q" >"$f"
  command psql -X -q -At -c "SELECT pg_prewarm('items_pgvector'), pg_prewarm(reltoastrelid) FROM pg_class WHERE oid = 'items_pgvector'::regclass AND reltoastrelid <> 0" >/dev/null
  pgv=$(pgbench -n -c 1 -T "$SECONDS_PER_RUN" -f "$f" 2>/dev/null | sed -nE 's/^tps = ([0-9.]+) .*/\1/p')
  rm -f "$f"
fi
table_mb=$(psql -At -c "SELECT round(pg_total_relation_size('items') / 1048576.0)")
simd=$(psql -At -c "SELECT lookalike_simd()")
workers=$(psql -At -c "SHOW max_parallel_workers_per_gather")
python3=/usr/bin/python3
load=$(cut -d' ' -f1-3 /proc/loadavg)
plan=$(psql -At -c "EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY e <=> (SELECT e FROM queries WHERE qid = 1) LIMIT 5" | grep -oE "(Parallel )?Custom Scan \([^)]*\)" | head -1)
plan=${plan:-"PostgreSQL's own plan"}
$python3 - "$ours" "$toasted" "$N" "$DIMS" "$table_mb" "$simd" "$workers" "$pgv" "$serial" "$load" "$tiny_serial" "$tiny_worker" "$postgres_plan" "$plan" <<'PY'
import json, sys
ours, toasted, n, dims, mb, simd, workers, pgv, serial, load, tiny_serial, tiny_worker, postgres_plan, plan = float(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:]
postgres_plan = float(postgres_plan)
serial = float(serial)
detail = f"{n} x {dims}-d clustered unit vectors, 1 client, kernels {simd}, max_parallel_workers_per_gather={workers}, table {mb} MB, load average {load}"
print(json.dumps({"name": "exact_top5_cosine_qps_vs_postgres_plan", "value": round(ours, 2), "unit": "queries/s",
                  "reference": "PostgreSQL's own plan for the same query (lookalike.exact_scan = off: operator per row, then sort), same run",
                  "reference_value": round(postgres_plan, 2), "ratio": round(ours / postgres_plan, 2),
                  "details": f"plan chosen: {plan}; {detail}"}))
print(json.dumps({"name": "exact_top5_cosine_qps", "value": round(ours, 2), "unit": "queries/s",
                  "reference": "same data stored out of line in TOAST (pgvector's layout), same run",
                  "reference_value": round(toasted, 2), "ratio": round(ours / toasted, 2), "details": detail}))
print(json.dumps({"name": "exact_top5_cosine_qps_vs_pgvector_published", "value": round(ours, 2), "unit": "queries/s",
                  "reference": "pgvector 0.8.6 exact scan, published figure for this data on a 2-core machine (not runnable here)",
                  "reference_value": 5.2, "ratio": round(ours / 5.2, 2), "target_ratio": 3.0, "details": detail}))
print(json.dumps({"name": "exact_top5_cosine_qps_serial_plan", "value": round(serial, 2), "unit": "queries/s",
                  "reference": "pgvector 0.8.6 exact scan, published figure (as above)", "reference_value": 5.2,
                  "ratio": round(serial / 5.2, 2), "target_ratio": 3.0,
                  "details": detail.replace(f"max_parallel_workers_per_gather={workers}", "max_parallel_workers_per_gather=0")}))
tiny_serial, tiny_worker = float(tiny_serial), float(tiny_worker)
print(json.dumps({"name": "parallel_worker_start_latency", "value": round(tiny_worker, 2), "unit": "ms per query",
                  "reference": "the same one-row query without a worker, same run (context for the parallel plan, not a lookalike figure)",
                  "reference_value": round(tiny_serial, 2), "ratio": round(tiny_serial / tiny_worker, 3),
                  "details": f"force_parallel_mode=on vs off; {detail}"}))
if pgv:
    print(json.dumps({"name": "exact_top5_cosine_qps_vs_pgvector", "value": round(ours, 2), "unit": "queries/s",
                      "reference": "pgvector installed on this server, same data and run", "reference_value": round(float(pgv), 2),
                      "ratio": round(ours / float(pgv), 2), "details": detail}))
PY
