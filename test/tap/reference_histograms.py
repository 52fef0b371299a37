#!/usr/bin/python3
"""Writes the reference's colour histograms of some fashion images, for 011_histogram_exact.pl.

usage: reference_histograms.py SHARED OUT.tsv BINS N
Takes the first N ids of SHARED/data/fashion/subset.csv plus every grayscale image of the set,
computes their histograms with the reference's own function (study_reference.histograms from
SHARED/reference) and writes one line per image: id <TAB> bins <TAB> {v1,v2,...} (a real[]).
"""
import os
import sys

import cv2

shared, out, bins, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, os.path.join(shared, "reference"))
import study_reference  # noqa: E402

data = os.path.join(shared, "data", "fashion")
ids, _ = study_reference.load(data)
chosen = list(ids[:n])
gray = [pid for pid in ids
        if cv2.imread(os.path.join(data, "images", f"{pid}.jpg"), cv2.IMREAD_UNCHANGED).ndim == 2]
chosen += [pid for pid in gray if pid not in chosen]
hists = study_reference.histograms(data, chosen, bins)
with open(out, "w") as f:
    for pid, h in zip(chosen, hists):
        # repr() of the float32 value widened to double: parses back to the same float32.
        f.write(f"{pid}\t{bins}\t{{{','.join(repr(float(v)) for v in h)}}}\n")
print(f"{len(chosen)} images ({len(gray)} grayscale)", file=sys.stderr)
