#!/usr/bin/env bash
# Scale-out (docs/scale-out.md): SELECT id FROM items ORDER BY e <=> q LIMIT 5 over 200,000
# clustered 128-d unit vectors (seeded; test/bench/clustered.py), one client, queries/s with
# pgbench (prepared statements, for every plan alike), on
#  - a coordinator (the bench server) whose table is hash-partitioned by id into two postgres_fdw
#    foreign tables on two shard servers that this script starts on the same machine
#    (async_capable, parallel_commit, extensions 'lookalike'): lookalike's top-k per partition,
#    one remote statement per shard, all shards at once (lookalike.shard_fanout, the default);
#  - the same with lookalike.shard_fanout = off: postgres_fdw's own foreign scans (a cursor per
#    shard), to measure what the one-statement scan saves;
#  - the same 200,000 rows in one table on the coordinator (one node), same run: the reference;
#  - the same sharded table with lookalike.partition_topk = off: PostgreSQL's plan without the
#    pushdown (every shard sorts all its rows, or streams its index, for the Merge Append).
# First with no index (the shards' exact top-k scan; the reference: the one node's exact scan),
# then with lookalike_hnsw on each shard and on the one node (ef_search 40). An index search is
# also compared at equal recall@5 (50 queries against the exact answers): one node with the
# smallest ef_search that reaches the 2 shards' recall at ef_search 40, and the 2 shards with the
# smallest ef_search that reaches one node's recall at ef_search 40.
# Then the CPU time per query of each backend (coordinator, each shard), for the shards (with
# prepared remote statements, the default, and with lookalike.shard_prepare = off) and one node
# (ef_search 40 and the equal-recall ef_search): on a shared machine the latency follows it.
# All three servers share this machine's cores, so the shards cannot be faster than one node
# here: the figure is the overhead of going through postgres_fdw.
# The plans compared with each other are timed in ROUNDS interleaved rounds of SECONDS_PER_RUN
# each (one plan after the other in every round), and each figure is the round with the median
# latency: the load of a shared machine changes by the minute, and each plan meets the same.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE (make bench sets them). N, DIMS, SECONDS_PER_RUN, ROUNDS
# may be set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${N:-200000}
DIMS=${DIMS:-128}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
ROUNDS=${ROUNDS:-5}
Q=100
root=${LOOKALIKE_ROOT:-$(cd "$here/../.." && pwd)}
work=$root/build/bench/shards
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Two shard servers on this machine, stopped on exit.
rm -rf "$work"
mkdir -p "$work"
[ "$(id -u)" = 0 ] && chown postgres "$work"
ports=()
for i in 1 2; do
  as_pg initdb -D "$work/s$i" -A trust -U postgres >"$work/initdb$i.log"
  port=$((50000 + RANDOM % 5000))
  cat >>"$work/s$i/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 1GB
session_preload_libraries = 'lookalike'
# The two shards share this machine's two cores: each runs its statement in one process (parallel
# workers would oversubscribe the cores; postgres_fdw's cursors never use them anyway).
max_parallel_workers_per_gather = 0
fsync = off
synchronous_commit = off
jit = off
CONF
  as_pg pg_ctl -D "$work/s$i" -l "$work/s$i.log" -w start >/dev/null
  ports+=("$port")
done
stop_shards() { for i in 1 2; do as_pg pg_ctl -D "$work/s$i" -m fast -w stop >/dev/null 2>&1 || true; done; }
trap stop_shards EXIT
shard() { PGHOST=$work PGPORT=${ports[$(($1 - 1))]} PGDATABASE=postgres psql "${@:2}"; }
for i in 1 2; do
  shard $i -c "CREATE EXTENSION lookalike" -c "CREATE TABLE items (id int PRIMARY KEY, e embedding($DIMS))"
done

psql <<SQL
SET client_min_messages = warning;
DROP TABLE IF EXISTS so_all, so_items, so_single, so_queries, so_truth CASCADE;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
DROP SERVER IF EXISTS so_shard1, so_shard2 CASCADE;
CREATE SERVER so_shard1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$work', port '${ports[0]}',
  dbname 'postgres', extensions 'lookalike', async_capable 'true', parallel_commit 'true', batch_size '1000');
CREATE SERVER so_shard2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$work', port '${ports[1]}',
  dbname 'postgres', extensions 'lookalike', async_capable 'true', parallel_commit 'true', batch_size '1000');
CREATE USER MAPPING FOR CURRENT_USER SERVER so_shard1;
CREATE USER MAPPING FOR CURRENT_USER SERVER so_shard2;
CREATE TABLE so_items (id int, e embedding($DIMS)) PARTITION BY HASH (id);
CREATE FOREIGN TABLE so_items_0 PARTITION OF so_items FOR VALUES WITH (MODULUS 2, REMAINDER 0)
  SERVER so_shard1 OPTIONS (table_name 'items');
CREATE FOREIGN TABLE so_items_1 PARTITION OF so_items FOR VALUES WITH (MODULUS 2, REMAINDER 1)
  SERVER so_shard2 OPTIONS (table_name 'items');
CREATE UNLOGGED TABLE so_all (id int, e embedding($DIMS));
SQL
"$here/clustered.py" $((N + Q)) "$DIMS" --seed 1 | psql -c "COPY so_all FROM STDIN (FORMAT binary)"
psql <<SQL
CREATE TABLE so_single (id int PRIMARY KEY, e embedding($DIMS));
INSERT INTO so_single SELECT id, e FROM so_all WHERE id <= $N;
INSERT INTO so_items SELECT id, e FROM so_all WHERE id <= $N;
CREATE TABLE so_queries AS SELECT id - $N AS qid, e FROM so_all WHERE id > $N;
DROP TABLE so_all;
VACUUM ANALYZE so_single, so_queries;
SQL
for i in 1 2; do shard $i -c "VACUUM ANALYZE items"; done

same_answers() {  # the sharded table gives the one node's distances, in order, for 10 queries
  psql -At -c "SELECT bool_and(a = b) FROM so_queries q,
    LATERAL (SELECT array_agg(d) a FROM (SELECT e <=> q.e d FROM so_items ORDER BY e <=> q.e LIMIT 5) s) x,
    LATERAL (SELECT array_agg(d) b FROM (SELECT e <=> q.e d FROM so_single ORDER BY e <=> q.e LIMIT 5) s) y
    WHERE q.qid <= 10"
}
[ "$(same_answers)" = t ] || { echo "scale-out: the sharded table's answers differ from one node's" >&2; exit 1; }

prewarm() {
  psql -At -c "SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.relname LIKE 'so_single%' AND c.relkind IN ('r', 'i')" >/dev/null
  for i in 1 2; do
    shard $i -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_prewarm" \
      -c "SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.relname LIKE 'items%' AND c.relkind IN ('r', 'i')" >/dev/null
  done
}
query_script() {  # $1 table, $2 file: pgbench's script of one top-5 query, a random one of the Q
  printf '\\set q random(1, %d)\nSELECT id FROM %s ORDER BY e <=> (SELECT e FROM so_queries WHERE qid = :q) LIMIT 5;\n' "$Q" "$1" >"$2"
}
run() {  # $1 table, $2 seconds -> "queries/s latency_ms"
  local f
  f=$(mktemp)
  query_script "$1" "$f"
  pgbench -n -c 1 -M prepared -T "$2" -f "$f" 2>/dev/null |
    awk '/^latency average/ {l = $4} /^tps = / {t = $3} END {print t, l}'
  rm -f "$f"
}
plan_of() {  # $1 table -> the remote SQL of the first partition, or the scan of the one node
  psql -At -c "LOAD 'lookalike'" -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM $1 ORDER BY e <=> (SELECT e FROM so_queries WHERE qid = 1) LIMIT 5" |
    grep -m1 -oE 'Remote SQL: .*|Custom Scan \([^)]*\)|Index Scan using [a-z_0-9]+' || true
}

# CPU time per query of each backend: the latency of a one-client run follows the CPU the query
# costs in all the processes on the shared cores, which this measures apart from the load. One
# client runs CPU_SECONDS + 2 s; over CPU_SECONDS of it the CPU time (utime + stime, from
# /proc/<pid>/stat) of its coordinator backend and of each shard's postgres_fdw backend, divided by
# the queries completed in that window (pgbench's per-transaction log).
ticks() { local t=0 p a; for p in "$@"; do read -r -a a </proc/"$p"/stat && t=$((t + a[13] + a[14])); done; echo "$t"; }
fdw_backends() { shard "$1" -At -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name = 'postgres_fdw'"; }
cpu_split() {  # $1 table, $2 PGOPTIONS -> "coordinator_ms shard1_ms shard2_ms queries" per query
  local f logs pid coord s1 s2 c0 a0 b0 c1 a1 b1 t0 t1 n hz
  f=$(mktemp)
  logs=$(mktemp -d)
  query_script "$1" "$f"
  (cd "$logs" && PGOPTIONS="$2" pgbench -n -c 1 -M prepared -T $((CPU_SECONDS + 2)) -l -f "$f" >/dev/null 2>&1) &
  pid=$!
  sleep 1
  coord=$(psql -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'")
  s1=$(fdw_backends 1)
  s2=$(fdw_backends 2)
  c0=$(ticks $coord) a0=$(ticks $s1) b0=$(ticks $s2) t0=$(date +%s.%N)
  sleep "$CPU_SECONDS"
  c1=$(ticks $coord) a1=$(ticks $s1) b1=$(ticks $s2) t1=$(date +%s.%N)
  wait "$pid"
  n=$(cat "$logs"/pgbench_log.* | awk -v a="$t0" -v b="$t1" '{t = $5 + $6 / 1e6} t >= a && t < b {n++} END {print n + 0}')
  hz=$(getconf CLK_TCK)
  awk -v n="$n" -v hz="$hz" -v c=$((c1 - c0)) -v a=$((a1 - a0)) -v b=$((b1 - b0)) \
    'BEGIN {m = 1000 / hz / (n > 0 ? n : 1); printf "%.3f %.3f %.3f %d\n", c * m, a * m, b * m, n}'
  rm -rf "$f" "$logs"
}
CPU_SECONDS=${CPU_SECONDS:-4}

rounds() {  # $1 rounds, $2 measure (called as: measure table PGOPTIONS), "name|PGOPTIONS|table" ...:
  # $1 interleaved runs of each, one after the other in every round -> $work/m_<name>
  local n=$1 measure=$2 r spec name opts table
  shift 2
  for spec in "$@"; do : >"$work/m_${spec%%|*}"; done
  for r in $(seq 1 "$n"); do
    for spec in "$@"; do
      IFS='|' read -r name opts table <<<"$spec"
      "$measure" "$table" "$opts" >>"$work/m_$name"
    done
  done
}
latency() { PGOPTIONS="$2" run "$1" "$SECONDS_PER_RUN"; }  # $1 table, $2 PGOPTIONS
median() { sort -n -k2 "$work/m_$1" | awk '{l[NR] = $0} END {print l[int((NR + 1) / 2)]}'; }

prewarm
rounds "$ROUNDS" latency "exact_single||so_single" "exact_sharded||so_items" "exact_cursor|-c lookalike.shard_fanout=off|so_items"
exact_single=$(median exact_single)
exact_sharded=$(median exact_sharded)
exact_cursor=$(median exact_cursor)
exact_off=$(PGOPTIONS="-c lookalike.partition_topk=off" run so_items 10)
plan_exact=$(plan_of so_items)
plan_off=$(PGOPTIONS="-c lookalike.partition_topk=off" plan_of so_items)

# The exact answers, for recall.
psql -c "CREATE TABLE so_truth AS SELECT qid, (SELECT array_agg(id) FROM (SELECT id FROM so_single ORDER BY e <=> q.e LIMIT 5) s) AS b FROM so_queries q WHERE qid <= 50"

# The index on every node (built one shard after the other: they share the cores).
for i in 1 2; do shard $i -c "CREATE INDEX ON items USING lookalike_hnsw (e embedding_cosine_ops)" -c "ANALYZE items"; done
psql -c "CREATE INDEX ON so_single USING lookalike_hnsw (e embedding_cosine_ops)" -c "ANALYZE so_single"
prewarm
index_scans() { shard 1 -At -c "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname = 'items_e_idx'"; }
recall() {  # recall@5 of $1 (index) at ef_search $2 against the exact answers, 50 queries
  # (LOAD: lookalike's planner hook, which ships ef_search, in place for the session's first query)
  PGOPTIONS="-c lookalike.ef_search=$2" psql -At -c "LOAD 'lookalike'" -c "SELECT round(avg((SELECT count(*) FROM unnest(a) x WHERE x = ANY (t.b)) / 5.0), 3)
    FROM so_queries q JOIN so_truth t USING (qid),
    LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM $1 ORDER BY e <=> q.e LIMIT 5) s) x"
}
at_least() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 >= b + 0)}'; }
recall_sharded=$(recall so_items 40)
recall_single=$(recall so_single 40)
# Equal recall: one node raised to the shards' recall, the shards lowered to one node's.
for ef_single_eq in 40 50 60 70 80 100 120 150 200 300 400; do
  recall_single_eq=$(recall so_single "$ef_single_eq")
  at_least "$recall_single_eq" "$recall_sharded" && break
done
for ef_sharded_eq in 5 10 15 20 25 30 35 40; do
  recall_sharded_eq=$(recall so_items "$ef_sharded_eq")
  at_least "$recall_sharded_eq" "$recall_single" && break
done
scans_before=$(index_scans)
rounds "$ROUNDS" latency "index_single||so_single" "index_sharded||so_items" "index_cursor|-c lookalike.shard_fanout=off|so_items" \
  "index_single_eq|-c lookalike.ef_search=$ef_single_eq|so_single" \
  "index_sharded_eq|-c lookalike.ef_search=$ef_sharded_eq|so_items"
sleep 1  # statistics are flushed at most once a second
scans=$(($(index_scans) - scans_before))
index_single=$(median index_single)
index_sharded=$(median index_sharded)
index_cursor=$(median index_cursor)
index_single_eq=$(median index_single_eq)
index_sharded_eq=$(median index_sharded_eq)
index_off=$(PGOPTIONS="-c lookalike.partition_topk=off" run so_items 10)
# CPU per query, interleaved: the shards (prepared statements, the default; and unnamed ones), one
# node at ef_search 40 and at the equal-recall ef_search.
rounds 3 cpu_split "cpu_sharded||so_items" "cpu_unprepared|-c lookalike.shard_prepare=off|so_items" \
  "cpu_single||so_single" "cpu_single_eq|-c lookalike.ef_search=$ef_single_eq|so_single"
cpu_median() { awk '{print $1 + $2 + $3, $0}' "$work/m_$1" | sort -n | awk '{l[NR] = $0} END {print l[int((NR + 1) / 2)]}' | cut -d' ' -f2-; }
cpu_sharded=$(cpu_median cpu_sharded)
cpu_unprepared=$(cpu_median cpu_unprepared)
cpu_single=$(cpu_median cpu_single)
cpu_single_eq=$(cpu_median cpu_single_eq)
plan_index=$(plan_of so_items)
plan_index_single=$(plan_of so_single)
load=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$N" "$DIMS" "$load" "$exact_single" "$exact_sharded" "$exact_cursor" "$exact_off" "$index_single" \
  "$index_sharded" "$index_cursor" "$index_off" "$index_single_eq" "$index_sharded_eq" "$plan_exact" "$plan_off" \
  "$plan_index" "$plan_index_single" "$recall_sharded" "$recall_single" "$scans" "$ef_single_eq" "$recall_single_eq" \
  "$ef_sharded_eq" "$recall_sharded_eq" "$cpu_sharded" "$cpu_unprepared" "$cpu_single" "$cpu_single_eq" <<'PY'
import json, sys
n, dims, load = sys.argv[1:4]
es, eh, ec, eo, is_, ih, ic, io, is_eq, ih_eq = (tuple(float(v) for v in a.split()) for a in sys.argv[4:14])
plan_exact, plan_off, plan_index, plan_index_single, rec_h, rec_s, scans = sys.argv[14:21]
ef_s_eq, rec_s_eq, ef_h_eq, rec_h_eq = sys.argv[21:25]
cpu_h, cpu_u, cpu_s, cpu_s_eq = ([float(x) for x in a.split()] for a in sys.argv[25:29])
detail = (f"{n} x {dims}-d clustered unit vectors, 1 client (pgbench, prepared statements; median of interleaved rounds), top 5 by cosine; "
          f"coordinator + 2 shard servers (postgres_fdw, async_capable) on this one machine; load average {load}")
def line(name, v, ref, refname, target, extra, **fields):
    out = {"name": name, "value": round(v[0], 2), "unit": "queries/s", "reference": refname,
           "reference_value": round(ref[0], 2), "ratio": round(v[0] / ref[0], 3), "target_ratio": target,
           "latency_ms": v[1], "reference_latency_ms": ref[1]}
    out.update(fields)
    out["details"] = f"latency {v[1]:.2f} ms vs {ref[1]:.2f} ms; {extra}; {detail}"
    print(json.dumps(out))
line("scaleout_exact_2shards_vs_one_node", eh, es, "the same rows in one table on one node, exact top-k scan, same run",
     round(1 / 1.3, 3), f"shards' remote SQL: {plan_exact}")
line("scaleout_exact_2shards_vs_no_pushdown", eh, eo,
     "the same sharded table, lookalike.partition_topk = off (PostgreSQL's plan: no LIMIT sent), same run",
     5.0, f"without pushdown: {plan_off}")
line("scaleout_exact_fanout_vs_fdw_cursors", eh, ec,
     "the same sharded table, lookalike.shard_fanout = off (postgres_fdw's foreign scans with the LIMIT: a cursor per shard), same run",
     None, "one remote statement per shard, all shards at once, against START/DECLARE/FETCH/CLOSE per shard")
line("scaleout_index_2shards_vs_one_node", ih, is_,
     "the same rows in one table on one node with lookalike_hnsw, ef_search 40, same run", round(1 / 1.3, 3),
     f"equal ef_search 40, not equal recall: recall@5 sharded {rec_h}, one node {rec_s}; shards' remote SQL: {plan_index}; "
     f"one node: {plan_index_single}; index scans on shard 1 during the index rounds: {scans}",
     recall=float(rec_h), reference_recall=float(rec_s), ef_search=40, reference_ef_search=40)
line("scaleout_index_2shards_vs_one_node_equal_recall", ih, is_eq,
     f"the same rows on one node with lookalike_hnsw at ef_search {ef_s_eq}, the smallest that reaches the 2 shards' recall@5, same run",
     round(1 / 1.3, 3), f"recall@5 sharded {rec_h} at ef_search 40, one node {rec_s_eq} at ef_search {ef_s_eq}",
     recall=float(rec_h), reference_recall=float(rec_s_eq), ef_search=40, reference_ef_search=int(ef_s_eq))
line("scaleout_index_2shards_lowered_vs_one_node_equal_recall", ih_eq, is_,
     f"the same rows on one node with lookalike_hnsw at ef_search 40; the shards at ef_search {ef_h_eq}, the smallest that reaches one node's recall@5, same run",
     round(1 / 1.3, 3), f"recall@5 sharded {rec_h_eq} at ef_search {ef_h_eq}, one node {rec_s} at ef_search 40",
     recall=float(rec_h_eq), reference_recall=float(rec_s), ef_search=int(ef_h_eq), reference_ef_search=40)
def cpu_line(name, v, ref, refname, extra, **fields):
    # queries per CPU-second of all backends (coordinator + shards): above 1 is better
    total, ref_total = sum(v[:3]), sum(ref[:3])
    out = {"name": name, "value": round(1000 / total, 1), "unit": "queries per CPU-second (all backends)",
           "reference": refname, "reference_value": round(1000 / ref_total, 1), "ratio": round(ref_total / total, 3),
           "target_ratio": None, "cpu_ms": round(total, 3), "reference_cpu_ms": round(ref_total, 3),
           "coordinator_cpu_ms": v[0], "shard_cpu_ms": v[1:3], "reference_coordinator_cpu_ms": ref[0],
           "reference_shard_cpu_ms": ref[1:3], "queries": int(v[3]), "reference_queries": int(ref[3])}
    out.update(fields)
    out["details"] = (f"CPU per query {total:.3f} ms (coordinator {v[0]:.3f}, shards {v[1]:.3f} + {v[2]:.3f}) vs "
                      f"{ref_total:.3f} ms (coordinator {ref[0]:.3f}, shards {ref[1]:.3f} + {ref[2]:.3f}); {extra}; "
                      f"utime + stime from /proc/<pid>/stat over {v[3]:.0f} and {ref[3]:.0f} queries, median of 3 interleaved runs; {detail}")
    print(json.dumps(out))
cpu_line("scaleout_index_cpu_2shards_vs_one_node_equal_recall", cpu_h, cpu_s_eq,
         f"the same rows on one node with lookalike_hnsw at ef_search {ef_s_eq} (the 2 shards' recall@5), CPU per query, same run",
         f"2 shards at ef_search 40 (recall@5 {rec_h}); one node at ef_search 40 costs {sum(cpu_s[:3]):.3f} ms",
         reference_ef_search=int(ef_s_eq), one_node_ef40_cpu_ms=round(sum(cpu_s[:3]), 3))
cpu_line("scaleout_index_cpu_prepared_vs_unprepared", cpu_h, cpu_u,
         "the same sharded table, lookalike.shard_prepare = off (an unnamed statement, parsed and planned on each shard per query; text results), CPU per query, same run",
         "the remote top-k statement prepared once per shard connection, binary results")
line("scaleout_index_fanout_vs_fdw_cursors", ih, ic,
     "the same sharded table with lookalike_hnsw on the shards, lookalike.shard_fanout = off (a cursor per shard), same run",
     None, "one remote statement per shard, all shards at once, against START/DECLARE/FETCH/CLOSE per shard")
line("scaleout_index_2shards_vs_no_pushdown", ih, io,
     "the same sharded table with lookalike_hnsw on the shards, lookalike.partition_topk = off, same run", None,
     "without pushdown each shard streams fetch_size rows out of its index")
PY
