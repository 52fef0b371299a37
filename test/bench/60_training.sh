#!/usr/bin/env bash
# Benchmark: lookalike.train_model() training throughput (images/s of forward + backward + step
# over the cached frozen outputs: the per-epoch seconds recorded in lookalike.model_data.training)
# against a PyTorch eager loop of the same computation in the same run: Debian's torch, the same
# TorchScript blocks (MobileNetV2 blocks 17-18 on cached 160x7x7 float16 maps at 224 px), the
# same 256-d projection, cosine-proxy loss over the same labels, AdamW, batch 32, flips, the same
# thread count, torch.set_flush_denormal(True). Then the embedding throughput of the trained
# model against its base (image_embeddings over the same images). JSON lines; ratio > 1: lookalike
# is faster.
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
ours=$(psql_q -At -c "SELECT round((training->>'images')::numeric * jsonb_array_length(training->'history')
  / (SELECT sum((e->>'seconds')::numeric) FROM jsonb_array_elements(training->'history') e), 2)
  FROM lookalike.model_data WHERE name = 'bench_learned'")

# ---- the reference: a PyTorch eager loop of the same training step ------------------------------
# (the rows go through a file: the script itself is python's stdin)
rows_csv=$(mktemp)
trap 'rm -f "$rows_csv"' EXIT
psql_q -At -c "COPY (SELECT id, article_type, base_colour, usage FROM bench_train ORDER BY id) TO STDOUT WITH CSV" >"$rows_csv"
ref=$(/usr/bin/python3 - "$model" "$data" "$threads" "$epochs" "$rows_csv" <<'PY'
import csv, sys, time, numpy as np, cv2, torch, torch.nn.functional as F
model, data, threads, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_flush_denormal(True)
torch.set_num_threads(threads)
torch.manual_seed(1)
rows = list(csv.reader(open(sys.argv[5])))
assert rows, "no training rows"
m = torch.jit.load(model).eval()
blocks = [getattr(m.features, str(i)) for i in range(19)]
mean = np.array([0.485, 0.456, 0.406], np.float32); std = np.array([0.229, 0.224, 0.225], np.float32)
cache = []
with torch.inference_mode():  # not timed, like lookalike's caching phase
    for r in rows:
        img = cv2.cvtColor(cv2.imread(f"{data}/images/{r[0]}.jpg", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        x = ((cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255 - mean) / std)
        x = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
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
t = time.time()
for e in range(epochs):
    order = torch.randperm(n)
    for s in range(0, n, bs):
        idx = order[s:s + bs]
        x = cache[idx].float()
        flip = torch.rand(len(idx)) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        for b in trained: x = b(x)
        emb = F.normalize(torch.addmm(bias, x.mean((2, 3)), w.t()), dim=1)
        loss = sum(F.cross_entropy(16 * emb @ F.normalize(p, dim=1).t(), l[idx]) for p, l in zip(proxies, labels))
        opt.zero_grad(); loss.backward(); opt.step()
print(round(n * epochs / (time.time() - t), 2))
PY
)

# ---- embedding throughput: trained model vs its base ----------------------------------------------
rate() {  # $1 = model
  local t0 t1
  t0=$(date +%s.%N)
  psql_q -v threads="$threads" -v m="$1" -c "SET lookalike.threads = $threads" \
    -c "SELECT count(*) FROM image_embeddings('SELECT id, image FROM bench_train', '$1')" >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(round($n / ($t1 - $t0), 2))"
}
base_rate=$(rate bench_base)
learned_rate=$(rate bench_learned)
load=$(cut -d' ' -f1-3 /proc/loadavg)

json() {  # name value reference reference_value unit extra
  python3 -c "import json,sys; v,r=float(sys.argv[2]),float(sys.argv[4]); print(json.dumps({'name': sys.argv[1], 'value': v, 'unit': sys.argv[5], 'reference': sys.argv[3], 'reference_value': r, 'ratio': round(v / r, 2), **json.loads(sys.argv[6])}))" "$@"
}
json training_mobilenet_v2_last2_blocks "$ours" \
  "PyTorch eager loop, same blocks/head/loss/AdamW/batch 32/threads, flush-to-zero" "$ref" images/s \
  "{\"images\": $n, \"epochs\": $epochs, \"threads\": $threads, \"loadavg\": \"$load\"}"
json embedding_learned_vs_base "$learned_rate" "image_embeddings() with the base MobileNetV2" "$base_rate" images/s \
  "{\"images\": $n, \"threads\": $threads, \"loadavg\": \"$load\"}"
psql_q -c "DROP TABLE bench_train" -c "SELECT lookalike.unregister_model('bench_learned')" \
  -c "SELECT lookalike.unregister_model('bench_base')" >/dev/null
