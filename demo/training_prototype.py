#!/usr/bin/python3
"""Method experiments for lookalike.train_model(), outside the database, on the training pool only.

Prototyping a loss or an embedding layout in C++ costs a demo run (half an hour) per variant; this
script tries them in PyTorch on the same network, the same cached block-16 maps and the same
optimiser, on whole style groups of the training pool held out (the evaluation set, its images and
its labels are never read). docs/training.md records what it measured.

  training_prototype.py cache        # once (~30 min on one core): block-16 maps of every pool image
  training_prototype.py run [options] # train on the pool minus held-out groups, evaluate on them

Environment: SHARED (default ../shared), OUT (default build/training-prototype), THREADS (1).
Split: 60 of the pool's large groups held out (md5 of "<split>:<group>"), each cut to 4..20 images,
plus 20 % of the images of 1..3-image groups as distractors; queries and metrics as in
../shared/reference/study_reference.py (one query per held-out group per seed, seeds 1..10, k = 5).
Needs Debian's python3-torch, python3-numpy, python3-opencv.
"""
import argparse, csv, hashlib, json, os, sys, time
import numpy as np

SHARED = os.environ.get("SHARED", "../shared")
POOL = os.path.join(SHARED, "data", "fashion-train")
MODEL = os.path.join(SHARED, "models", "mobilenet_v2-imagenet-features.pt")
OUT = os.environ.get("OUT", "build/training-prototype")
LABELS = {"gender": 1, "master": 2, "sub": 3, "article": 4, "colour": 5, "usage": 8}


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def read_styles():
    """styles.csv rows by id; the last field (productDisplayName) may hold unquoted commas."""
    with open(os.path.join(POOL, "styles.csv"), newline="") as f:
        r = csv.reader(f)
        next(r)
        return {int(x[0]): x[:9] + [",".join(x[9:])] for x in r}


def cache():
    import cv2, torch
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    torch.set_flush_denormal(True)
    styles = read_styles()
    ids = [i for i in sorted(styles) if os.path.exists(os.path.join(POOL, "images", f"{i}.jpg"))]
    features = torch.jit.load(MODEL).eval().features
    prefix = torch.nn.Sequential(*[getattr(features, str(i)) for i in range(17)])
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    maps = np.zeros((len(ids), 160, 7, 7), np.float16)
    thumbs = np.zeros((len(ids), 3, 28, 28), np.float16)
    with torch.inference_mode():
        for s in range(0, len(ids), 32):
            xs = []
            for pid in ids[s:s + 32]:
                img = cv2.imread(os.path.join(POOL, "images", f"{pid}.jpg"), cv2.IMREAD_COLOR)
                img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (224, 224),
                                 interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
                xs.append(((img - mean) / std).transpose(2, 0, 1))
            x = torch.from_numpy(np.stack(xs))
            thumbs[s:s + len(xs)] = torch.nn.functional.avg_pool2d(x, 8).numpy()
            maps[s:s + len(xs)] = prefix(x).numpy()
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "maps16.npy"), maps)
    np.save(os.path.join(OUT, "thumbs.npy"), thumbs)
    with open(os.path.join(OUT, "labels.csv"), "w", newline="") as f:
        csv.writer(f).writerows([pid] + styles[pid][1:] for pid in ids)


class Pool:
    def __init__(self):
        rows = list(csv.reader(open(os.path.join(OUT, "labels.csv"))))
        self.ids = np.array([int(r[0]) for r in rows])
        self.codes = {}
        for name, col in LABELS.items():
            values = sorted({r[col] for r in rows})
            index = {v: i for i, v in enumerate(values)}
            self.codes[name] = (np.array([index[r[col]] for r in rows]), len(values))
        keys = {}
        self.groups = np.array([keys.setdefault((r[4], r[5], r[8]), len(keys)) for r in rows])
        self.sizes = np.bincount(self.groups)

    def split(self, seed, held=60, distractors=20):
        """(held-out images, distractor images, training images) of one split."""
        large = sorted(np.where(self.sizes > 20)[0], key=lambda g: md5(f"{seed}:{g}"))[:held]
        val = []
        for g in large:
            members = sorted(np.where(self.groups == g)[0], key=lambda i: md5(f"{seed}:m:{self.ids[i]}"))
            val += members[:4 + int(md5(f"{seed}:n:{g}"), 16) % 17]
        dis = [i for i in np.where(self.sizes[self.groups] <= 3)[0]
               if int(md5(f"{seed}:d:{self.ids[i]}"), 16) % 100 < distractors]
        out = set(dis) | set(np.where(np.isin(self.groups, large))[0])
        return np.array(val), np.array(dis), np.array([i for i in range(len(self.ids)) if i not in out])

    def evaluate(self, f, val, dis, seeds=10, k=5, parts=None, shift=1.0):
        """Mean P@k, R@k, Hit@k over seeds: one query per held-out group, the rest the gallery.
        parts: score by the product over the parts (column slices of f) of (shift + cos)."""
        every = np.concatenate([val, dis])
        if parts:
            pieces = [f[:, s:e] / np.linalg.norm(f[:, s:e], axis=1, keepdims=True) for s, e in parts]

            def score(q, gallery):
                return np.prod([shift + p[q] @ p[gallery].T for p in pieces], axis=0)
        else:
            f = f / np.linalg.norm(f, axis=1, keepdims=True)

            def score(q, gallery):
                return f[q] @ f[gallery].T
        g = self.groups[every].copy()
        g[len(val):] = -1 - np.arange(len(dis))  # a distractor is relevant to no query
        size = {x: int((g == x).sum()) for x in set(g[:len(val)])}
        out = []
        for seed in range(1, seeds + 1):
            best = {}
            for j in range(len(val)):
                key = md5(f"{seed}:{self.ids[every[j]]}")
                if g[j] not in best or key < best[g[j]][0]:
                    best[g[j]] = (key, j)
            q = np.array(sorted(j for _, j in best.values()))
            gallery = np.setdiff1d(np.arange(len(every)), q)
            top = gallery[np.argsort(-score(q, gallery), axis=1, kind="stable")[:, :k]]
            rel = (g[top] == g[q][:, None]).sum(1)
            out.append((np.mean(rel / k), np.mean(rel / (np.array([size[x] for x in g[q]]) - 1)),
                        np.mean(rel > 0)))
        return [round(float(x), 4) for x in np.array(out).mean(0)]


def run(a):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    torch.set_flush_denormal(True)
    pool = Pool()
    maps = torch.from_numpy(np.load(os.path.join(OUT, "maps16.npy")))
    thumbs = torch.from_numpy(np.load(os.path.join(OUT, "thumbs.npy"))).float()
    labels = a.labels.split(",")
    Y = torch.stack([torch.from_numpy(pool.codes[x][0]) for x in labels], 1)
    classes = [pool.codes[x][1] for x in labels]
    weights = [float(x) for x in a.weights.split(",")] if a.weights else [1.0] * len(labels)
    sub = a.dims if a.mode == "shared" else a.dims // len(labels)

    def last_blocks():
        feats = torch.jit.load(MODEL).features
        return [getattr(feats, "17"), getattr(feats, "18")]

    def gpool(x):  # global average pooling, or generalised-mean pooling with --gem p
        return x.clamp(min=1e-6).pow(a.gem).mean((2, 3)).pow(1 / a.gem) if a.gem else x.mean((2, 3))

    with torch.inference_mode():
        b17, b18 = last_blocks()
        pooled = None
        if a.blocks == 0:
            parts = {16: [], 17: [], 18: []}
            for s in range(0, len(maps), 256):
                x16 = maps[s:s + 256].float()
                x17 = b17(x16)
                for n, x in ((16, x16), (17, x17), (18, b18(x17))):
                    parts[n].append(gpool(x))
            parts = {n: torch.cat(v) for n, v in parts.items()}
            extra = [int(n) for n in a.parts.split(",") if n] or ([16] if a.multi else [])
            if a.equalise:  # each part scaled so that its mean per-dimension spread is the last block's
                ref = parts[18].std(0).mean()
                scale = {n: float(ref / parts[n].std(0).mean()) for n in extra}
                print(f"part scales {scale}", file=sys.stderr)
            else:
                scale = {n: a.multi or 1.0 for n in extra}
            pooled = torch.cat([parts[18]] + [scale[n] * parts[n] for n in extra], 1)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            extra = 32 if a.thumb else 0
            if a.thumb:  # a learned soft colour histogram of the 28 x 28 thumbnail
                self.bins = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 1), torch.nn.ReLU(),
                                                torch.nn.Conv2d(32, 32, 1))
            n = 1 if a.mode == "shared" else len(labels)
            extra += pooled.shape[1] - 1280 if pooled is not None else 0
            self.proj = torch.nn.ModuleList([torch.nn.Linear(1280 + extra, sub) for _ in range(n)])
            self.proxies = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.randn(c, sub) * 0.01) for c in classes])

        def forward(self, f, t):
            if a.thumb:
                f = torch.cat([f, 10 * F.softmax(self.bins(t), 1).mean((2, 3))], 1)
            if a.dropout:
                f = F.dropout(f, a.dropout, self.training)
            es = [F.normalize(p(f), dim=1) for p in self.proj]
            es = es * len(labels) if a.mode == "shared" else es
            logits = [a.scale * e @ F.normalize(p, dim=1).t() for e, p in zip(es, self.proxies)]
            if a.mode == "shared":
                return es[0], logits
            if a.mode == "factor":
                return torch.cat([w * e for w, e in zip(weights, es)], 1), logits
            return torch.cat([w * F.softmax(x, 1).sqrt() for w, x in zip(weights, logits)], 1), logits

    def one_split(seed):
        torch.manual_seed(1)
        rng = np.random.RandomState(1)
        val, dis, train = pool.split(seed)
        if a.cap:
            train = np.array(sorted(i for g in set(pool.groups[train]) for i in sorted(
                train[pool.groups[train] == g], key=lambda i: md5(f"c:{pool.ids[i]}"))[:a.cap]))
        if a.epochs == 0:
            every = np.concatenate([val, dis])
            return pool.evaluate(pooled[every].numpy(), val, dis), len(train)
        blocks = last_blocks() if a.blocks else []
        head = Head()
        groups = [{"params": head.parameters(), "lr": a.lr}]
        if blocks:
            groups.append({"params": [p for b in blocks for p in b.parameters()], "lr": a.base_lr})
        opt = torch.optim.AdamW(groups, weight_decay=a.wd)
        steps, step, lr0 = a.epochs * ((len(train) + 31) // 32), 0, [g["lr"] for g in groups]

        def features(idx, augment):
            if not blocks:
                return pooled[idx]
            x = maps[idx].float()
            if augment:
                flip = torch.from_numpy(rng.rand(len(idx)) < 0.5).view(-1, 1, 1, 1)
                x = torch.where(flip, x.flip(3), x)
            for b in blocks:
                x = b(x)
            return gpool(x)

        for epoch in range(a.epochs):
            order, total = train[rng.permutation(len(train))], 0.0
            if a.pk:  # the shuffled images regrouped into runs of at most pk images of one style group
                by = {}
                for i in order:
                    by.setdefault(pool.groups[i], []).append(i)
                chunks = [v[c:c + a.pk] for v in by.values() for c in range(0, len(v), a.pk)]
                chunks = [chunks[j] for j in rng.permutation(len(chunks))]
                order = np.array([i for c in chunks for i in c])
            for s in range(0, len(order), 32):
                idx = torch.from_numpy(order[s:s + 32])
                warm = 0.1 * steps
                f = (step + 1) / warm if step < warm else 0.5 * (1 + np.cos(np.pi * (step - warm) / (steps - warm)))
                for g, l0 in zip(opt.param_groups, lr0):
                    g["lr"] = l0 * f
                e, logits = head(features(idx, True), thumbs[idx])
                if a.margin:  # CosFace: the target class's logit lowered by scale * margin
                    logits = [x - a.scale * a.margin * F.one_hot(Y[idx, h], x.shape[1]) for h, x in enumerate(logits)]
                loss = sum(F.cross_entropy(x, Y[idx, h], label_smoothing=a.smooth) for h, x in enumerate(logits))
                if a.supcon:  # supervised contrastive loss over the style group within the batch
                    en = F.normalize(e, dim=1)  # (the factor and prob modes' embeddings are not unit length)
                    sim = en @ en.t() / a.temperature
                    eye = torch.eye(len(idx), dtype=torch.bool)
                    sim = sim.masked_fill(eye, -1e9)
                    g = torch.from_numpy(pool.groups[idx.numpy()])
                    pos = (g[:, None] == g[None, :]) & ~eye
                    logp = sim - sim.logsumexp(1, keepdim=True)
                    has = pos.any(1)
                    if has.any():
                        sc = -(logp * pos).sum(1)[has] / pos.sum(1)[has]
                        loss = loss + a.supcon * sc.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                total += loss.item() * len(idx)
            print(f"split {seed} epoch {epoch + 1} loss {total / len(order):.3f}", file=sys.stderr, flush=True)
        head.eval()
        with torch.no_grad():
            every = np.concatenate([val, dis])
            f = torch.cat([head(features(torch.from_numpy(every[s:s + 256]), False), thumbs[every[s:s + 256]])[0]
                           for s in range(0, len(every), 256)]).numpy()
        parts = None
        if a.product and a.mode != "shared":
            width = f.shape[1] // len(labels)
            parts = [(h * width, (h + 1) * width) for h in range(len(labels))]
        return pool.evaluate(f, val, dis, parts=parts, shift=0.0 if a.mode == "prob" else 1.0), len(train)

    res = [one_split(int(s)) for s in a.splits.split(",")]
    mean = np.array([r[0] for r in res]).mean(0).round(4)
    print(json.dumps({"options": vars(a), "P@5": mean[0], "R@5": mean[1], "Hit@5": mean[2],
                      "per_split": [r[0] for r in res], "training_images": [r[1] for r in res]}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["cache", "run"])
    ap.add_argument("--mode", default="shared", choices=["shared", "factor", "prob"],
                    help="shared: one embedding, a proxy classifier per label (lookalike's method); "
                         "factor: one normalised sub-embedding per label, concatenated; "
                         "prob: the square roots of the per-label class probabilities, concatenated")
    ap.add_argument("--labels", default="article,colour,usage")
    ap.add_argument("--weights", default="", help="per-label weights of factor/prob (default 1 each)")
    ap.add_argument("--epochs", type=int, default=4, help="0: the ImageNet features, no training")
    ap.add_argument("--blocks", type=int, default=0, choices=[0, 2], help="train blocks 17-18 too")
    ap.add_argument("--dims", type=int, default=256)
    ap.add_argument("--scale", type=float, default=16)
    ap.add_argument("--gem", type=float, default=0.0, help="generalised-mean pooling with this power")
    ap.add_argument("--multi", type=float, default=0.0,
                    help="head only: also block 16's average-pooled output, times this factor")
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout on the pooled features")
    ap.add_argument("--wd", type=float, default=1e-4, help="AdamW weight decay (train_model's 1e-4)")
    ap.add_argument("--smooth", type=float, default=0.0, help="label smoothing of the cross-entropy")
    ap.add_argument("--margin", type=float, default=0.0, help="CosFace margin of the target class")
    ap.add_argument("--parts", default="", help="blocks (16,17) whose pooled outputs join the last block's")
    ap.add_argument("--equalise", type=int, default=0, help="1: scale each part to the last block's spread")
    ap.add_argument("--supcon", type=float, default=0.0, help="weight of a supervised contrastive loss over groups")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--pk", type=int, default=0, help="batches made of runs of this many images of one group")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--base-lr", type=float, default=3e-4)
    ap.add_argument("--thumb", type=int, default=0, help="1: add a learned colour-histogram branch")
    ap.add_argument("--cap", type=int, default=0, help="at most this many training images per group")
    ap.add_argument("--splits", default="1,2,3")
    ap.add_argument("--product", type=int, default=0,
                    help="1: score by the product over labels of (1 + cos) (factor) or of the Bhattacharyya coefficients (prob)")
    a = ap.parse_args()
    cache() if a.command == "cache" else run(a)
