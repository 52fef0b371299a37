#!/usr/bin/env bash
# Benchmark: lookalike.train_model() training throughput (images/s of forward + backward + step
# over the cached frozen outputs: the per-epoch seconds recorded in lookalike.model_data.training)
# against a PyTorch eager loop of the same computation in the same run: Debian's torch, the same
# TorchScript blocks (MobileNetV2 blocks 17-18 on cached 160x7x7 float16 maps at 224 px), the
# same 256-d projection, cosine-proxy loss over the same labels, AdamW, batch 32, flips, the same
# thread count, torch.set_flush_denormal(True); and against the same loop with lookalike's two
# step-mechanics optimisations (channels-last maps, malloc thresholds). Then the caching rate of
# train_model (decode + the 17 frozen blocks per image) and the embedding rate of the trained
# model, both against image_embeddings() with the base model over the same images in a warm
# backend. JSON lines; ratio > 1: lookalike is faster; cpu_ratio: the same per second of CPU time
# of each process (steadier than wall-clock time on a loaded machine).
#
# Standalone: PGHOST/PGPORT/PGUSER/PGDATABASE of a server with lookalike installed, a superuser;
# SHARED (default ../shared). TRAIN_IMAGES (default 640) images of the training pool
# ($SHARED/data/fashion-train), EPOCHS (default 2), THREADS (default 1).
set -euo pipefail
root=${LOOKALIKE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SHARED=${SHARED:-$root/../shared}
SHARED=$(cd "$SHARED" && pwd)
threads=${THREADS:-1}
n=${TRAIN_IMAGES:-640}
epochs=${EPOCHS:-2}
model=$SHARED/models/mobilenet_v2-imagenet-features.pt
data=$SHARED/data/fashion-train
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---- set-up (not timed): base model and the first n images of the training pool with labels ---
psql_q -v model="$model" -v data="$data" -v n="$n" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS lookalike;
SELECT lookalike.unregister_model(name) FROM lookalike.models WHERE name IN ('bench_base', 'bench_learned');
SELECT lookalike.register_model('bench_base', :'model');
DROP TABLE IF EXISTS bench_train;
CREATE TABLE bench_train AS
  SELECT id, f[5] AS article_type, f[6] AS base_colour, f[9] AS usage,
         pg_read_binary_file(:'data' || '/images/' || id || '.jpg') AS image
    FROM (SELECT split_part(l, ',', 1)::bigint AS id, string_to_array(l, ',') AS f, n
            FROM regexp_split_to_table(pg_read_file(:'data' || '/styles.csv'), E'\n') WITH ORDINALITY AS t(l, n)
           WHERE n > 1 AND l <> '') s
   ORDER BY n LIMIT :n;
SQL

# ---- lookalike: train, read the per-epoch seconds ------------------------------------------------
psql_q -v threads="$threads" -v epochs="$epochs" >&2 <<'SQL'
SET lookalike.threads = :threads;
SELECT name, dims FROM lookalike.train_model('bench_learned', 'bench_base',
  'SELECT image, article_type, base_colour, usage FROM public.bench_train ORDER BY id', epochs => :epochs,
  trainable_blocks => 2);
SQL
read -r ours ours_cpu <<<"$(psql_q -At -c "SELECT round((training->>'images')::numeric * jsonb_array_length(training->'history')
  / (SELECT sum((e->>'seconds')::numeric) FROM jsonb_array_elements(training->'history') e), 2) || ' ' ||
  round((training->>'images')::numeric * jsonb_array_length(training->'history')
  / (SELECT sum((e->>'cpu_seconds')::numeric) FROM jsonb_array_elements(training->'history') e), 2)
  FROM lookalike.model_data WHERE name = 'bench_learned'")"

# ---- the reference: a PyTorch eager loop of the same training step ------------------------------
# (the rows go through a file: the script itself is python's stdin)
rows_csv=$(mktemp)
trap 'rm -f "$rows_csv"' EXIT
psql_q -At -c "COPY (SELECT id, article_type, base_colour, usage FROM bench_train ORDER BY id) TO STDOUT WITH CSV" >"$rows_csv"
reference() {  # $1 = 1: feature maps channels-last, as lookalike hands them to the blocks
/usr/bin/python3 - "$model" "$data" "$threads" "$epochs" "$rows_csv" "$1" <<'PY'
import csv, sys, time, numpy as np, cv2, torch, torch.nn.functional as F
model, data, threads, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
channels_last = sys.argv[6] == "1"
torch.set_flush_denormal(True)
torch.set_num_threads(threads)
torch.manual_seed(1)
rows = list(csv.reader(open(sys.argv[5])))
assert rows, "no training rows"
m = torch.jit.load(model).eval()
blocks = [getattr(m.features, str(i)) for i in range(19)]
mean = np.array([0.485, 0.456, 0.406], np.float32); std = np.array([0.229, 0.224, 0.225], np.float32)
cache = []
def image(r):
    img = cv2.cvtColor(cv2.imread(f"{data}/images/{r[0]}.jpg", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x = ((cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255 - mean) / std)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())
with torch.inference_mode():  # not timed, like lookalike's caching phase
    for i in range(0, len(rows), 16):
        x = torch.stack([image(r) for r in rows[i:i + 16]])
        for b in blocks[:17]: x = b(x)
        cache.append(x.half())
cache = torch.cat(cache)
labels = []
for c in range(1, 4):
    vals = {}
    labels.append(torch.tensor([vals.setdefault(r[c], len(vals)) for r in rows]))
trained = blocks[17:]
for b in trained:
    for p in b.parameters(): p.requires_grad_(True)
w = ((torch.rand(256, 1280) * 2 - 1) / 1280 ** 0.5).requires_grad_(True)
bias = torch.zeros(256, requires_grad=True)
proxies = [(torch.randn(int(l.max()) + 1, 256) * 0.01).requires_grad_(True) for l in labels]
opt = torch.optim.AdamW([{"params": [w, bias] + proxies, "lr": 1e-3},
                         {"params": [p for b in trained for p in b.parameters()], "lr": 3e-4}],
                        weight_decay=1e-4)
n = len(rows); bs = 32
t, c = time.time(), time.process_time()
for e in range(epochs):
    order = torch.randperm(n)
    for s in range(0, n, bs):
        idx = order[s:s + bs]
        x = cache[idx].float()
        flip = torch.rand(len(idx)) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if channels_last: x = x.contiguous(memory_format=torch.channels_last)
        for b in trained: x = b(x)
        emb = F.normalize(torch.addmm(bias, x.mean((2, 3)), w.t()), dim=1)
        loss = sum(F.cross_entropy(16 * emb @ F.normalize(p, dim=1).t(), l[idx]) for p, l in zip(proxies, labels))
        opt.zero_grad(); loss.backward(); opt.step()
print(round(n * epochs / (time.time() - t), 2), round(n * epochs / (time.process_time() - c), 2))
PY
}
read -r ref ref_cpu <<<"$(reference 0)"
# The same loop with lookalike's two step-mechanics optimisations: channels-last feature maps and
# glibc's malloc thresholds raised as lookalike.TensorHeap does (freed activations stay mapped).
read -r ref_tuned ref_tuned_cpu <<<"$(MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912 reference 1)"

# ---- embedding throughput: trained model vs its base ----------------------------------------------
# images/s of image_embeddings() after a warm-up call in the same session: wall-clock, and per
# second of the backend's CPU time (utime + stime of /proc/self/stat, in clock ticks)
rate() {  # $1 = model
  psql_q -At -v m="$1" <<SQL
SET lookalike.threads = $threads;
CREATE TEMP VIEW cpu AS SELECT (f[12]::numeric + f[13]::numeric) / $(getconf CLK_TCK) AS s
  FROM string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS f;
SELECT count(*) FROM image_embeddings('SELECT id, image FROM bench_train ORDER BY id LIMIT 32', :'m') \\g /dev/null
SELECT clock_timestamp() AS t0, s AS c0 FROM cpu \\gset
SELECT count(*) FROM image_embeddings('SELECT id, image FROM bench_train', :'m') \\g /dev/null
SELECT round(($n / extract(epoch FROM clock_timestamp() - :'t0'::timestamptz))::numeric, 2) || ' ' ||
       round($n / (s - :c0), 2) FROM cpu;
SQL
}
read -r base_rate base_cpu <<<"$(rate bench_base)"
read -r learned_rate learned_cpu <<<"$(rate bench_learned)"
read -r cache_rate cache_cpu <<<"$(psql_q -At -c "SELECT round((training->>'images')::numeric / (training->>'cache_seconds')::numeric, 2) || ' ' ||
  round((training->>'images')::numeric / (training->>'cache_cpu_seconds')::numeric, 2)
  FROM lookalike.model_data WHERE name = 'bench_learned'")"
load=$(cut -d' ' -f1-3 /proc/loadavg)

# name value reference reference_value unit: JSON line with the ratio; $6, $7 = the same rates per
# second of CPU time (one process each, every thread), robust against the machine's other load
json() {
  python3 -c "import json,sys; v,r,vc,rc=map(float,sys.argv[2:6]); print(json.dumps({'name': sys.argv[1], 'value': v, 'unit': 'images/s', 'reference': sys.argv[6], 'reference_value': r, 'ratio': round(v / r, 2), 'value_per_cpu_second': vc, 'reference_per_cpu_second': rc, 'cpu_ratio': round(vc / rc, 2), **json.loads(sys.argv[7])}))" "$@"
}
train_info="{\"images\": $n, \"epochs\": $epochs, \"threads\": $threads, \"loadavg\": \"$load\"}"
info="{\"images\": $n, \"threads\": $threads, \"loadavg\": \"$load\"}"
json training_mobilenet_v2_last2_blocks "$ours" "$ref" "$ours_cpu" "$ref_cpu" \
  "PyTorch eager loop, same blocks/head/loss/AdamW/batch 32/threads, flush-to-zero" "$train_info"
json training_mobilenet_v2_last2_blocks_vs_tuned_python "$ours" "$ref_tuned" "$ours_cpu" "$ref_tuned_cpu" \
  "the same PyTorch loop with channels-last maps and lookalike's malloc thresholds" "$train_info"
json training_caching_vs_image_embeddings "$cache_rate" "$base_rate" "$cache_cpu" "$base_cpu" \
  "image_embeddings() with the base model, same images, warm backend (caching: 17 of 19 blocks)" "$info"
json embedding_learned_vs_base "$learned_rate" "$base_rate" "$learned_cpu" "$base_cpu" \
  "image_embeddings() with the base MobileNetV2, warm backend" "$info"
psql_q -c "DROP TABLE bench_train" -c "SELECT lookalike.unregister_model('bench_learned')" \
  -c "SELECT lookalike.unregister_model('bench_base')" >/dev/null
