#!/usr/bin/env bash
# make demo: the style-retrieval study inside PostgreSQL, end to end (docs/demo.md).
#  1. builds lookalike and the loader; unless LOOKALIKE_DSN names a server, installs them into
#     the private tree (scripts/pg-tree.sh) and starts a throwaway cluster of its own
#     (build/demo/data, port DEMO_PORT, default 54329; reused if already running);
#  2. loads FASHION_DIR (default $SHARED/data/fashion) into fashion.products (lookalike-load);
#  3. defines the style groups and the evaluation (demo/fashion.sql), registers the model
#     (MODEL, default $SHARED/models/mobilenet_v2-imagenet-features.pt), computes every feature
#     (demo/features.sql) and evaluates (lookalike.refresh_evaluation);
#  4. prints the study's Table 1 beside ours and writes build/demo/report.html;
#  5. leaves the database running and prints how to connect and how to stop it.
#  3b. trains the `learned` model (lookalike.train_model) on TRAIN_DIR (default
#     $SHARED/data/fashion-train, loaded into fashion_train.products) -- never on FASHION_DIR --
#     unless a model trained on the same data with the same parameters is kept in
#     DEMO_OUT/learned-<key>.pt from an earlier run (then it is registered from that file);
#     TRAIN_EPOCHS (default 3), TRAIN_BLOCKS (trainable_blocks, default 15: MobileNetV2's blocks
#     4-18 and a head), TRAIN_PER_GROUP (default 100: at most 100 images of each (article
#     type, colour, usage) group, a seeded choice, 12,312 of the pool's 19,918 images, to stay
#     within the 20-minute budget; 0 = every image): the variant chosen on held-out groups of
#     the training pool (docs/training.md); TRAIN_RESIZE (default pad: the learned model and its
#     base, registered again as mobilenet_v2_pad_w168, keep the images' aspect ratio, white
#     around them; stretch: as the cnn method); TRAIN_WIDTH (the base's input_width, default
#     168: a 168 x 224 box, the 3:4 shape of the fashion images, which pads them on no side;
#     TRAIN_WIDTH= (empty): the 224 x 224 square); TRAIN_MARGIN (train_model's margin, default 0);
#     TRAIN_POOLED (train_model's pooled_blocks, default 3: the pooled outputs of blocks 16-18);
#     TRAIN_PROXIES (train_model's proxies_per_class, default 3); TRAIN_MEMBERS (train_model's
#     ensemble_members, default auto: as many members as the budget allows, at most 3, each
#     a full training: a two-epoch training of 1024 images, rolled back, times this machine first;
#     a number: that many); TRAIN_BUDGET (default 1200: the seconds of training the auto choice
#     may plan for, the issue's 20 minutes); TRAIN_DIMS (train_model's embedding_dims, default
#     auto: 128 per member); TRAIN_WEIGHTS (train_model's label_weights for article type, colour
#     and usage, default 1,1,0.5: the usage loss at half weight; empty: 1 each); TRAIN_BN_NECK
#     (train_model's bn_neck, default true: the embedding batch-normalised before the loss);
#     TRAIN_THREADS (lookalike.threads while training, default 2: the demo trains with nothing
#     else running; on a machine whose other core is busy, 1 trains 2-3x faster than 2) and
#     TRAIN=0 (skip the learned method) adjust it.
# Environment: LOOKALIKE_DSN (libpq connection string of an existing server with lookalike
# installed), FASHION_DIR, MODEL, SHARED, DEMO_PORT, DEMO_OUT (default build/demo: logs, report,
# and the throwaway cluster).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SHARED=${SHARED:-$root/../shared}
SHARED=$(cd "$SHARED" && pwd)
FASHION_DIR=${FASHION_DIR:-$SHARED/data/fashion}
FASHION_DIR=$(cd "$FASHION_DIR" && pwd)
MODEL=${MODEL:-$SHARED/models/mobilenet_v2-imagenet-features.pt}
TRAIN_DIR=${TRAIN_DIR:-$SHARED/data/fashion-train}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-3}
TRAIN_BLOCKS=${TRAIN_BLOCKS:-15}
TRAIN_THREADS=${TRAIN_THREADS:-2}
TRAIN_PER_GROUP=${TRAIN_PER_GROUP:-100}
TRAIN_RESIZE=${TRAIN_RESIZE:-pad}
TRAIN_WIDTH=${TRAIN_WIDTH-168}
TRAIN_DIMS=${TRAIN_DIMS:-auto}
TRAIN_MARGIN=${TRAIN_MARGIN:-0}
TRAIN_POOLED=${TRAIN_POOLED:-3}
TRAIN_PROXIES=${TRAIN_PROXIES:-3}
TRAIN_MEMBERS=${TRAIN_MEMBERS:-auto}
TRAIN_BUDGET=${TRAIN_BUDGET:-1200}
TRAIN_WEIGHTS=${TRAIN_WEIGHTS-1,1,0.5}
[[ "$TRAIN_WEIGHTS" =~ ^[0-9.,]*$ ]] || { echo "TRAIN_WEIGHTS must be numbers separated by commas"; exit 1; }
TRAIN_BN_NECK=${TRAIN_BN_NECK:-true}
[[ "$TRAIN_BN_NECK" =~ ^(true|false)$ ]] || { echo "TRAIN_BN_NECK must be true or false"; exit 1; }
TRAIN=${TRAIN:-1}
port=${DEMO_PORT:-54329}
out=${DEMO_OUT:-$root/build/demo}
mkdir -p "$out"
out=$(cd "$out" && pwd)
t_start=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$1" $(($(date +%s) - t_start)); }
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

step "building lookalike and the loader"
make -s -j"$(nproc)" >"$out/make.log" 2>&1 || { tail -30 "$out/make.log"; exit 1; }

if [ -n "${LOOKALIKE_DSN:-}" ]; then
  dsn=$LOOKALIKE_DSN
  psql_bin=psql
  echo "using the server named by LOOKALIKE_DSN (lookalike must be installed there: make install)"
else
  step "starting a throwaway PostgreSQL cluster in $out/data (port $port)"
  bindir=$(scripts/pg-tree.sh "$root/build/pg")
  bindir=$(cd "$bindir" && pwd)
  psql_bin=$bindir/psql
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$out"
    # the server user must reach the private tree, the model and the images
    chmod o+rx "$root" "$root/build" "$out" 2>/dev/null || true
  fi
  if [ ! -f "$out/data/PG_VERSION" ]; then
    as_pg "$bindir/initdb" -D "$out/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$out/initdb.log"
  fi
  if as_pg "$bindir/pg_ctl" -D "$out/data" status >/dev/null 2>&1; then
    as_pg "$bindir/pg_ctl" -D "$out/data" -w -l "$out/server.log" restart -m fast >/dev/null
  else
    as_pg "$bindir/pg_ctl" -D "$out/data" -w -l "$out/server.log" \
      -o "-p $port -k $out -c listen_addresses='' -c shared_buffers=256MB -c max_parallel_workers_per_gather=0" \
      start >/dev/null
  fi
  # a fresh database on every run: the extension and the catalogue come from this checkout
  as_pg "$psql_bin" -X -q -h "$out" -p "$port" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS lookalike_demo" -c "CREATE DATABASE lookalike_demo"
  dsn="host=$out port=$port dbname=lookalike_demo user=postgres"
fi
psql_demo() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$dsn" "$@"; }

step "loading $FASHION_DIR"
tools/loader/lookalike-load --dsn "$dsn" "$FASHION_DIR"

step "style groups and the evaluation (demo/fashion.sql)"
psql_demo -f demo/fashion.sql >/dev/null
psql_demo -c "SELECT count(*) AS style_groups, sum(products) AS products FROM fashion.style_groups"

step "features (demo/features.sql)"
has() { psql_demo -tA -c "SELECT to_regprocedure('$1') IS NOT NULL"; }
# TRAIN_MEMBERS=auto: trains one member for two epochs on the first 1024 training images with the
# demo's options ($train_options, in a transaction that is rolled back: nothing is registered),
# and prints the largest number of members, at most 3, whose estimated training time (the caching
# pass scaled to every image, plus epochs x members x images at the second epoch's rate) fits
# TRAIN_BUDGET.
# On 2026-12-02's machine eight such estimates for three members gave 915-1,084 s against
# 1,004 s of actual training: unbiased, about +-8 % apart (docs/training.md). The estimate uses
# this machine's speed now: a busy machine chooses fewer members.
choose_members() {
  local timing
  timing=$(psql_demo -tA -F ' ' <<SQL | tail -1
BEGIN;
SET LOCAL lookalike.threads = $TRAIN_THREADS;
SET LOCAL client_min_messages = warning;
SELECT count(*) FROM lookalike.train_model('${learned}_timing', '$base',
    'SELECT * FROM ($train_query) AS q LIMIT 1024', epochs => 2, embedding_dims => 128, $train_options);
SELECT (SELECT count(*) FROM ($train_query) AS q), training->>'images', training->>'cache_seconds',
       training->'history'->1->>'seconds'
  FROM lookalike.model_data WHERE name = '${learned}_timing';
ROLLBACK;
SQL
  ) || return 1
  [ "$(echo "$timing" | wc -w)" = 4 ] || { echo "timing failed: $timing" >&2; return 1; }
  echo "$timing" | awk -v epochs="$TRAIN_EPOCHS" -v budget="$TRAIN_BUDGET" '{
    m = 1
    for (k = 3; k >= 1; k--) {
      est = $3 * $1 / $2 + epochs * k * $1 * $4 / $2
      printf "  %d member(s): about %.0f s of training for %d images\n", k, est, $1 > "/dev/stderr"
      if (est <= budget) { m = k; break }
    }
    if (est > budget)
      print "  even one member is estimated over the budget: TRAIN_BLOCKS=10 TRAIN_EPOCHS=2 is the cheaper method (docs/training.md)" > "/dev/stderr"
    print m
  }'
}
if [ "$(has 'image_embedding(bytea,text)')" = t ]; then
  if [ -r "$MODEL" ]; then
    if [ "$(psql_demo -tA -c "SELECT count(*) FROM lookalike.models WHERE name = 'mobilenet_v2'")" = 0 ]; then
      psql_demo -c "SELECT name, dims, sha256 FROM lookalike.register_model('mobilenet_v2', '$MODEL', description => 'MobileNetV2 ImageNet features (demo)')"
    fi
  else
    echo "model file $MODEL not readable: cnn and fused are skipped"
  fi
fi
learned=""
if [ "$TRAIN" = 1 ] && [ "$(has 'lookalike.train_model(text,text,text,integer,integer,integer,integer,double precision,double precision,integer,text,integer,double precision,integer,integer,integer,double precision[],boolean)')" = t ] &&
  [ -r "$TRAIN_DIR/styles.csv" ] && [ "$(psql_demo -tA -c "SELECT count(*) FROM lookalike.models WHERE name = 'mobilenet_v2'")" = 1 ]; then
  TRAIN_DIR=$(cd "$TRAIN_DIR" && pwd)
  [ "$TRAIN_DIR" != "$FASHION_DIR" ] || { echo "TRAIN_DIR must not be FASHION_DIR"; exit 1; }
  budget_param=""
  [ "$TRAIN_MEMBERS" != auto ] || budget_param=" budget=$TRAIN_BUDGET"
  # train_model's options of both the timing (choose_members) and the training itself; the
  # parameters below (the reuse key and the model's description) take them from here too
  # shellcheck disable=SC2016  # the single quotes are the SQL literal's, inside a double-quoted string
  train_options="trainable_blocks => $TRAIN_BLOCKS, batch_size => 32, learning_rate => 0.001,
        base_learning_rate => 0.0003, seed => 1, margin => $TRAIN_MARGIN,
        pooled_blocks => $TRAIN_POOLED, proxies_per_class => $TRAIN_PROXIES,
        bn_neck => $TRAIN_BN_NECK${TRAIN_WEIGHTS:+, label_weights => '{$TRAIN_WEIGHTS}'}"
  # (", " separates the options; an array's own commas and the quotes of its literal stay out of
  # the separators: label_weights={1,1,0.5})
  params="epochs=$TRAIN_EPOCHS embedding_dims=$TRAIN_DIMS $(printf '%s' "$train_options" | tr -s ' \n' ' ' | sed "s/ => /=/g; s/, / /g; s/'//g") per_group=$TRAIN_PER_GROUP resize=$TRAIN_RESIZE${TRAIN_WIDTH:+ input_width=$TRAIN_WIDTH} ensemble_members=$TRAIN_MEMBERS$budget_param threads=$TRAIN_THREADS labels=article_type,base_colour,usage model=$(sha256sum "$MODEL" | cut -c1-64)"
  # the key: parameters, base model, the trainer's and the preprocessing's sources and the
  # training data (labels and the list of image files with sizes and times)
  key=$( { printf '%s\n' "$params"; sha256sum src/model/training.cpp src/model/runtime.cpp | cut -c1-64; sha256sum "$TRAIN_DIR/styles.csv" | cut -c1-64;
           (cd "$TRAIN_DIR/images" && find . -type f -printf '%p %s %T@\n' | LC_ALL=C sort); } | sha256sum | cut -c1-16)
  learned=learned_$key
  saved=$out/learned-$key.pt
  if [ -s "$saved" ]; then
    step "learned model: reusing $saved (same training data and parameters)"
    psql_demo -c "SELECT name, dims, sha256 FROM lookalike.register_model('$learned', '$saved', description => 'trained on $TRAIN_DIR ($params), reused from an earlier run', resize => '$TRAIN_RESIZE', input_width => ${TRAIN_WIDTH:-NULL})"
  else
    step "loading the training pool $TRAIN_DIR into fashion_train.products"
    tools/loader/lookalike-load --dsn "$dsn" --schema fashion_train "$TRAIN_DIR"
    # at most TRAIN_PER_GROUP images per style group (chosen by md5 of the id: seeded, stable)
    train_query="SELECT image, article_type, base_colour, usage FROM (SELECT id, image, article_type, base_colour, usage,
        row_number() OVER (PARTITION BY article_type, base_colour, usage ORDER BY md5(id::text)) AS r
        FROM fashion_train.products WHERE image IS NOT NULL) AS s WHERE $TRAIN_PER_GROUP = 0 OR r <= $TRAIN_PER_GROUP ORDER BY id"
    # the base: the demo's model, registered again with TRAIN_RESIZE and TRAIN_WIDTH unless
    # they are its own
    base=mobilenet_v2
    if [ "$TRAIN_RESIZE" != stretch ] || [ -n "$TRAIN_WIDTH" ]; then
      base=mobilenet_v2_$TRAIN_RESIZE${TRAIN_WIDTH:+_w$TRAIN_WIDTH}
      psql_demo -c "SELECT r.name, r.resize, r.input_width FROM lookalike.models m,
          lookalike.register_model('$base', m.path, m.input_size, m.mean, m.std,
            'the demo''s model, resize $TRAIN_RESIZE${TRAIN_WIDTH:+, input width $TRAIN_WIDTH}', '$TRAIN_RESIZE',
            ${TRAIN_WIDTH:-NULL}) r
        WHERE m.name = 'mobilenet_v2'"
    fi
    if [ "$TRAIN_MEMBERS" = auto ]; then
      step "timing a short training to choose the number of ensemble members (TRAIN_BUDGET=${TRAIN_BUDGET}s)"
      TRAIN_MEMBERS=$(choose_members) || exit 1
      params=${params/ensemble_members=auto/ensemble_members=$TRAIN_MEMBERS (auto)}
    fi
    [ "$TRAIN_DIMS" != auto ] || TRAIN_DIMS=$((128 * TRAIN_MEMBERS))
    params=${params/embedding_dims=auto/embedding_dims=$TRAIN_DIMS}
    step "training the learned model on fashion_train ($params; lookalike.training_progress shows its progress)"
    psql_demo -c "SET lookalike.threads = $TRAIN_THREADS" -c "SELECT name, dims, sha256 FROM lookalike.train_model('$learned', '$base',
        '$train_query',
        epochs => $TRAIN_EPOCHS, embedding_dims => $TRAIN_DIMS, $train_options,
        ensemble_members => $TRAIN_MEMBERS,
        description => 'trained on $TRAIN_DIR ($params)')"
    psql_demo -tA -c "SELECT encode(torchscript, 'base64') FROM lookalike.model_data WHERE name = '$learned'" | base64 -d >"$saved.tmp"
    mv "$saved.tmp" "$saved"
    psql_demo -tA -c "SELECT training FROM lookalike.model_data WHERE name = '$learned'" >"$out/learned-$key.json"
  fi
fi
psql_demo -v model=mobilenet_v2 -v learned_model="$learned" -f demo/features.sql

step "evaluation (lookalike.refresh_evaluation, seeds 1..20, k = 5)"
psql_demo -f demo/evaluate.sql

step "Table 1"
psql_demo -f demo/table1.sql | tee "$out/table1.txt"

step "HTML report"
psql_demo -tA -f demo/report_data.sql >"$out/report_data.json"
/usr/bin/python3 scripts/demo_report.py "$out/report_data.json" "$out/report.html"
echo "report: $out/report.html"

step "done"
echo "The database is left running."
if [ -z "${LOOKALIKE_DSN:-}" ]; then
  echo "  connect: $psql_bin \"$dsn\""
  echo "     e.g.: SELECT * FROM fashion.retrieval_summary;"
  echo "  stop:    $( [ "$(id -u)" = 0 ] && echo 'runuser -u postgres -- ')$bindir/pg_ctl -D $out/data stop"
else
  echo "  connect: psql \"$dsn\""
fi
