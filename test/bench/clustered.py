#!/usr/bin/python3
"""Seeded clustered unit vectors for benchmarks, written as PostgreSQL binary COPY data.

usage: clustered.py N DIMS [--clusters 100] [--seed 1] [--spread 0.8] > rows.copy
Rows are (id int4, e embedding): ids 1..N; each vector is a random unit cluster centre plus
Gaussian noise of total norm ~spread, normalised. The same arguments give the same bytes.
Load with: COPY t (id, e) FROM STDIN (FORMAT binary).
"""
import argparse
import sys

import numpy as np


def vectors(n, dims, clusters, seed, spread):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dims)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    which = rng.integers(0, clusters, n)
    x = centres[which] + rng.standard_normal((n, dims)).astype(np.float32) * (spread / np.sqrt(dims))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def write_copy(x, out, first_id=1):
    n, dims = x.shape
    out.write(b"PGCOPY\n\xff\r\n\0" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    row = np.dtype([("nf", ">i2"), ("l1", ">i4"), ("id", ">i4"), ("l2", ">i4"), ("dim", ">i2"),
                    ("unused", ">i2"), ("x", ">f4", (dims,))])
    rows = np.zeros(n, row)
    rows["nf"] = 2
    rows["l1"] = 4
    rows["id"] = np.arange(first_id, first_id + n)
    rows["l2"] = 4 + 4 * dims
    rows["dim"] = dims
    rows["x"] = x
    out.write(rows.tobytes())
    out.write((-1).to_bytes(2, "big", signed=True))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("dims", type=int)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--spread", type=float, default=0.8)
    a = ap.parse_args()
    write_copy(vectors(a.n, a.dims, a.clusters, a.seed, a.spread), sys.stdout.buffer)
