#!/usr/bin/env bash
# Benchmark: embedding the 6,217 images of $SHARED/data/fashion with the MobileNetV2 features
# model in one SQL statement (image_embeddings over a table), against the reference pipeline
# (cnn() of $SHARED/reference/study_reference.py: cv2 decode/resize, numpy normalisation,
# TorchScript forward with batches of 32,
# torch.set_flush_denormal(True)) with the same model and the same thread count,
# measured in the same run; and lookalike.embed_table() (committed batches, resumable) against
# image_embeddings() in the same run. Prints JSON lines (name, value, unit, reference, reference_value,
# ratio; ratio > 1: lookalike is faster).
#
# Standalone: PGHOST/PGPORT/PGUSER/PGDATABASE of a server with lookalike installed, a superuser
# (the model is registered), and SHARED (default ../shared); the server reads the image files.
#   THREADS=n       threads for both sides (default 1, lookalike's per-backend default; cnn() is
#                   given the same count)
#   REF_IMAGES=n    images the plain reference embeds (default 320 = 10 of its batches; it runs
#                   at a few images/s with Debian's torch, so all 6,217 would take long; its
#                   rate per image does not depend on the count)
#   REF_OPT_IMAGES=n  images for the second and third references: the same Python pipeline with
#                   the model passed through torch.jit.optimize_for_inference (default 640), and
#                   that again with glibc's malloc thresholds raised as lookalike's TensorHeap
#                   raises them, OpenBLAS sized as lookalike sizes it (the reference at its
#                   best: on the 2-core VMs page faults made the pipeline 5 times slower
#                   without the thresholds, docs/model.md)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=${LOOKALIKE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SHARED=${SHARED:-$root/../shared}
SHARED=$(cd "$SHARED" && pwd)
threads=${THREADS:-1}  # lookalike's per-backend default (docs/model.md: 2 intra-op threads lose when the other core is busy)
ref_images=${REF_IMAGES:-320}
ref_opt_images=${REF_OPT_IMAGES:-640}
model=$SHARED/models/mobilenet_v2-imagenet-features.pt
data=$SHARED/data/fashion
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---- set-up (not timed): the model and a table of the 6,217 images -------------------------
psql_q -v model="$model" -v data="$data" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
SELECT lookalike.unregister_model(name) FROM lookalike.models WHERE name = 'bench_mobilenet_v2';
SELECT lookalike.register_model('bench_mobilenet_v2', :'model');
DROP TABLE IF EXISTS bench_images, bench_embeddings;
CREATE TABLE bench_images AS
  SELECT id, pg_read_binary_file(:'data' || '/images/' || id || '.jpg') AS image
    FROM (SELECT split_part(l, ',', 1)::bigint AS id
            FROM regexp_split_to_table(pg_read_file(:'data' || '/subset.csv'), E'\n') WITH ORDINALITY AS t(l, n)
           WHERE n > 1 AND l <> '' ORDER BY n) s;
VACUUM ANALYZE bench_images;
SQL
n=$(psql_q -At -c "SELECT count(*) FROM bench_images")

# ---- lookalike: one statement, timed end to end (new backend, LibTorch and model load) ------
t0=$(date +%s.%N)
psql_q -v threads="$threads" <<'SQL' >&2
SET lookalike.threads = :threads;
SET lookalike.progress_interval = 20;
CREATE TABLE bench_embeddings AS
  SELECT * FROM image_embeddings('SELECT id, image FROM bench_images', 'bench_mobilenet_v2');
SQL
t1=$(date +%s.%N)
got=$(psql_q -At -c "SELECT count(*) FROM bench_embeddings WHERE dims(embedding) = 1280")
[ "$got" = "$n" ] || { echo "30_embedding: expected $n embeddings, got $got" >&2; exit 1; }
ours=$(python3 -c "print(round($n / ($t1 - $t0), 2))")

# ---- lookalike.embed_table(): the same images in committed batches of 256 (resumable) --------
psql_q -c "DROP TABLE IF EXISTS bench_fill" \
  -c "CREATE TABLE bench_fill AS SELECT id, image, NULL::embedding(1280) AS emb, NULL::text AS emb_md5 FROM bench_images" \
  -c "ALTER TABLE bench_fill ADD PRIMARY KEY (id)" >/dev/null
t0=$(date +%s.%N)
psql_q -v threads="$threads" <<'SQL' >&2
SET lookalike.threads = :threads;
CALL lookalike.embed_table('bench_fill', 'id', 'image', 'emb', 'bench_mobilenet_v2', hash_column => 'emb_md5');
SQL
t1=$(date +%s.%N)
got=$(psql_q -At -c "SELECT count(*) FROM bench_fill f JOIN bench_embeddings e USING (id) WHERE f.emb = e.embedding")
[ "$got" = "$n" ] || { echo "30_embedding: embed_table filled $got of $n rows like image_embeddings" >&2; exit 1; }
batched=$(python3 -c "print(round($n / ($t1 - $t0), 2))")

# ---- the references, same threads -------------------------------------------------------------
ref() {  # $1 = images, $2 = plain|optimized; prints images/s of cnn()
  /usr/bin/python3 - "$SHARED" "$1" "$2" "$threads" <<'PY'
import csv, os, sys, time
shared, count, mode, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sys.path.insert(0, os.path.join(shared, "reference"))
import torch
import study_reference as sr
# Flush-to-zero, as lookalike runs inference: without it Debian's torch crawls on denormals and
# the reference would be several times slower than it can be, an unfair reference.
torch.set_flush_denormal(True)
os.cpu_count = lambda: threads  # cnn() uses torch.set_num_threads(os.cpu_count())
data = os.path.join(shared, "data", "fashion")
ids = [int(r["id"]) for r in csv.DictReader(open(os.path.join(data, "subset.csv")))][:count]
model = os.path.join(shared, "models", "mobilenet_v2-imagenet-features.pt")
if mode == "optimized":
    load = torch.jit.load
    torch.jit.load = lambda f: torch.jit.optimize_for_inference(torch.jit.freeze(load(f).eval()))
t = time.time()
out = sr.cnn(data, ids, model, 224)
dt = time.time() - t
assert out.shape == (len(ids), 1280)
print(round(len(ids) / dt, 2))
PY
}
ref_plain=$(ref "$ref_images" plain)
ref_opt=$(ref "$ref_opt_images" optimized)
ref_tuned=$(as_lookalike_runs ref "$ref_opt_images" optimized)

json() {  # name value reference reference_value extra
  python3 -c "import json,sys; v,r=float(sys.argv[2]),float(sys.argv[4]); print(json.dumps({'name': sys.argv[1], 'value': v, 'unit': 'images/s', 'reference': sys.argv[3], 'reference_value': r, 'ratio': round(v / r, 2), **json.loads(sys.argv[5])}))" "$@"
}
json embedding_mobilenet_v2_table "$ours" \
  "study_reference.py cnn() (cv2 + numpy + TorchScript, batch 32, flush-to-zero), same model and threads" "$ref_plain" \
  "{\"images\": $n, \"reference_images\": $ref_images, \"threads\": $threads}"
json embedding_mobilenet_v2_table_vs_optimized_python "$ours" \
  "cnn() with torch.jit.optimize_for_inference(freeze(model)), flush-to-zero, same threads" "$ref_opt" \
  "{\"images\": $n, \"reference_images\": $ref_opt_images, \"threads\": $threads}"
json embedding_mobilenet_v2_table_vs_tuned_python "$ours" \
  "cnn() optimized as above, with lookalike's malloc thresholds (MALLOC_MMAP_THRESHOLD_ 256 MB, MALLOC_TRIM_THRESHOLD_ 512 MB), same threads (OpenBLAS sized as lookalike sizes it)" "$ref_tuned" \
  "{\"images\": $n, \"reference_images\": $ref_opt_images, \"threads\": $threads}"
json embedding_embed_table_batched "$batched" \
  "image_embeddings() in one statement, same run (target: ratio >= 0.95)" "$ours" \
  "{\"images\": $n, \"batch_rows\": 256, \"threads\": $threads, \"hash_column\": true}"
psql_q -c "DROP TABLE bench_images, bench_embeddings, bench_fill" -c "SELECT lookalike.unregister_model('bench_mobilenet_v2')" >/dev/null
