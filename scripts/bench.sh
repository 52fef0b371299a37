#!/usr/bin/env bash
# make bench: builds lookalike, installs it into the private PostgreSQL tree, starts a throwaway
# cluster (unless LOOKALIKE_DSN names a server), and runs every executable test/bench/*.sh in
# name order -- or those whose name contains one of the words in BENCH (e.g. BENCH="exact index").
# Each benchmark prints one JSON line per figure: name, value, unit, reference, reference_value,
# ratio (value / reference_value; above 1 is better for lookalike), and details.
# The lines are also collected in build/bench/results.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SHARED=$(cd "${SHARED:-$root/../shared}" && pwd)
export SHARED
export LOOKALIKE_ROOT=$root
out=$root/build/bench
mkdir -p "$out"
make -s -j"$(nproc)" >"$out/make.log" 2>&1 || { tail -30 "$out/make.log"; exit 1; }
bindir=$("$root/scripts/pg-tree.sh" "$root/build/pg")
export PATH="$bindir:$PATH"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -z "${LOOKALIKE_DSN:-}" ]; then
  data=$out/cluster
  rm -rf "$data"
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres "$data"
  as_pg initdb -D "$data/data" -A trust -U postgres >"$out/initdb.log"
  port=${BENCH_PORT:-$((45000 + RANDOM % 5000))}  # BENCH_PORT: a port of your own on a shared machine
  cat >>"$data/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$data'
shared_buffers = 4GB  # 1/6 of this 24 GB machine; the 100k x 512-d table (261 MB) must not hit the seq-scan ring buffer (tables > shared_buffers/4)
work_mem = 64MB
maintenance_work_mem = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
synchronous_commit = off
fsync = off
jit = off
CONF
  as_pg pg_ctl -D "$data/data" -l "$data/server.log" -w start >/dev/null
  trap 'as_pg pg_ctl -D "$data/data" -m fast -w stop >/dev/null' EXIT
  export PGHOST=$data PGPORT=$port PGUSER=postgres
  psql -X -q -d postgres -c 'CREATE DATABASE bench' >/dev/null
  export PGDATABASE=bench
else
  export PGDATABASE=$LOOKALIKE_DSN
fi
psql -X -q -c 'CREATE EXTENSION IF NOT EXISTS lookalike' >/dev/null

: >"$out/results.jsonl"
for b in test/bench/*.sh; do
  [ -x "$b" ] || continue
  name=$(basename "$b" .sh)
  if [ -n "${BENCH:-}" ]; then
    hit=no
    for w in $BENCH; do [[ $name == *"$w"* ]] && hit=yes; done
    [ $hit = yes ] || continue
  fi
  echo "== $name" >&2
  "$b" | tee -a "$out/results.jsonl"
done
