#!/usr/bin/python3
"""Writes the checked-in seed corpora of the fuzz targets (test/fuzz/corpus/<target>/): a few
tiny hand-made inputs per target, every image generated here (8x6 pixels), none copied from data.
Re-run after changing it:  /usr/bin/python3 test/fuzz/make_seeds.py"""
import os
import shutil
import struct

import cv2
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
corpus = os.path.join(here, "corpus")


def write(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def encode(ext, img, params=()):
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def with_exif_orientation(jpeg, orientation):
    """The JPEG with an APP1 Exif segment (little-endian TIFF, one IFD entry: Orientation)."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x0112, 3, 1, orientation) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def main():
    shutil.rmtree(corpus, ignore_errors=True)
    # Embedding text: valid forms, boundaries and near misses.
    for i, s in enumerate([
            "[1,2.5,-3]", " [ 1e-3 ,\t+4 ] ", "[3.4028235e38,-1.17549435e-38,1e-45]", "[0]",
            "[-0.0,0.5E+2]", "[1e39]", "[nan]", "[inf]", "[]", "[1,,2]", "[1 2]", "1,2",
            "[" + ",".join(str(j % 7 - 3) for j in range(64)) + "]"]):
        write("embedding_text", "seed%02d" % i, s)
    # Embedding binary: int16 dim, int16 reserved, float4s, all big-endian.
    def vec(xs, reserved=0):
        return struct.pack(">hh", len(xs), reserved) + b"".join(struct.pack(">f", x) for x in xs)
    for i, m in enumerate([
            vec([1.0, -2.5, 3.0]), vec([0.0]), vec([1e-45, -3.4028235e38]),
            vec([float(j) for j in range(32)]), vec([1.0], reserved=1), vec([1.0])[:-1],
            struct.pack(">hh", 0, 0), vec([float("nan")])]):
        write("embedding_binary", "seed%02d" % i, m)
    # Images: 8x6 gradients in every format and the variants the decoder treats differently.
    y, x = np.mgrid[0:6, 0:8]
    bgr = np.dstack([x * 30, y * 40, (x + y) * 15]).astype(np.uint8)
    gray = (x * 20 + y * 10).astype(np.uint8)
    bgra = np.dstack([bgr, (x * 32).astype(np.uint8)])
    jpeg = encode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    images = {
        "color.jpg": jpeg,
        "gray.jpg": encode(".jpg", gray),
        "progressive.jpg": encode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "exif6.jpg": with_exif_orientation(jpeg, 6),
        "color.png": encode(".png", bgr),
        "gray.png": encode(".png", gray),
        "alpha.png": encode(".png", bgra),
        "deep.png": encode(".png", (bgr.astype(np.uint16) * 257)),
        "lossy.webp": encode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 50]),
        "lossless.webp": encode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "color.bmp": encode(".bmp", bgr),
        "gray.bmp": encode(".bmp", gray),
    }
    for name, data in images.items():
        write("image_decode", name, data)
        write("image_header", name, data)
        write("image_header", "head-" + name, data[:64])


if __name__ == "__main__":
    main()
