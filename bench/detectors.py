"""The face detectors side by side: ms per image and misses, and dlib's CNN on dlib vs ONNX Runtime.

Datasets: LFW View 1 DevTest's first N images (250x250, searched at upsample 0, as
the pipeline's first level), and N images each of ORL (92x112 grey) and Yale (320x243
grey), evenly spread over the subjects, at the detectors' default upsampling
(``Detector.find``: rising levels until a face is found). A miss is an image where
the detector finds no face (every image here holds one).

Rows: ``hog``; ``cnn`` on dlib (``cnn_face_detection_model_v1``); ``cnn`` on ONNX
Runtime with one thread (the default, ``$FACEGATE_ONNX_THREADS`` unset) and with one
thread per core; ``hog+cnn`` (the CNN only where HOG finds nothing) on both engines.
After the table: how far the two CNN engines agree (same faces, same boxes, the
largest confidence difference) and the time to convert the ``.dat`` file to ONNX.

    .venv/bin/python bench/detectors.py [--images 60] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import pair_images, read_pairs
from facegate.detection.base import Detector
from facegate.detection.detectors import CnnDetector, HogDetector
from facegate.detection.mmod_onnx import converted_model
from facegate.images import load_image

REPO = Path(__file__).resolve().parents[1]


class Fallback(Detector):
    """HOG, then the given CNN where HOG finds nothing (``hog+cnn`` with an explicit CNN engine)."""

    name = "hog+cnn"

    def __init__(self, cnn: Detector) -> None:
        self.hog, self.cnn = HogDetector(), cnn

    def detect(self, image: np.ndarray, upsample: int = 0):
        return self.find(image, upsample)

    def find(self, image: np.ndarray, upsample: int | None = None):
        return self.hog.find(image, upsample) or self.cnn.find(image, upsample)


def spread(paths: list[Path], n: int) -> list[Path]:
    """``n`` of ``paths``, evenly spaced (all subjects, not the first few)."""
    if len(paths) <= n:
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


def datasets(data: Path, n: int) -> list[tuple[str, list[np.ndarray], int | None]]:
    lfw = data / "lfw"
    names = pair_images(read_pairs(lfw / "pairsDevTest.txt"))[:n]
    orl = spread(sorted((data / "orl").glob("s*/*.pgm")), n)
    yale = spread(sorted((data / "yale").glob("subject*")), n)
    return [
        (f"LFW DevTest ({len(names)}, upsample 0)", [load_image(lfw / "images" / name) for name in names], 0),
        (f"ORL ({len(orl)}, default upsample)", [load_image(p) for p in orl], None),
        (f"Yale ({len(yale)}, default upsample)", [load_image(p) for p in yale], None),
    ]


def run(detector: Detector, images: list[np.ndarray], upsample: int | None):
    detector.find(images[0], upsample)  # load the model outside the timing
    found, start = [], time.perf_counter()
    for image in images:
        found.append(detector.find(image, upsample))
    return 1000 * (time.perf_counter() - start) / len(images), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60, help="images per dataset (default 60)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    os.environ.pop("FACEGATE_ENGINE", None)
    cores = os.cpu_count() or 1
    detectors: list[tuple[str, Detector]] = [
        ("hog", HogDetector()),
        ("cnn (dlib)", CnnDetector("dlib")),
        ("cnn (onnx, 1 thread)", CnnDetector("onnx", threads=1)),
        (f"cnn (onnx, {cores} threads)", CnnDetector("onnx", threads=cores)),
        ("hog+cnn (dlib)", Fallback(CnnDetector("dlib"))),
        ("hog+cnn (onnx, 1 thread)", Fallback(CnnDetector("onnx", threads=1))),
    ]
    sets = datasets(args.data, args.images)
    results = {}
    for set_name, images, upsample in sets:
        for name, detector in detectors:
            results[name, set_name] = run(detector, images, upsample)

    print(f"\n## Face detectors, {cores} cores: ms per image (misses: images with no face found)\n")
    print("| detector | " + " | ".join(s for s, _, _ in sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for name, _ in detectors:
        cells = []
        for set_name, _, _ in sets:
            ms, found = results[name, set_name]
            cells.append(f"{ms:.0f} ms, {sum(not f for f in found)} missed")
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\n## cnn: dlib vs ONNX Runtime, the same searches\n")
    print("| dataset | faces (dlib / onnx) | identical boxes | boxes within 2 px | max confidence difference |")
    print("|---|---:|---:|---:|---:|")
    for set_name, _, _ in sets:
        theirs, ours = results["cnn (dlib)", set_name][1], results["cnn (onnx, 1 thread)", set_name][1]
        same_count = [(t, o) for t, o in zip(theirs, ours, strict=True) if len(t) == len(o)]
        pairs = [(a, b) for t, o in same_count for a, b in zip(t, o, strict=True)]
        boxes = [(np.array([a.x, a.y, a.w, a.h]), np.array([b.x, b.y, b.w, b.h])) for a, b in pairs]
        identical = sum((a == b).all() for a, b in boxes)
        close = sum((np.abs(a - b) <= 2).all() for a, b in boxes)
        worst = max((abs(a.confidence - b.confidence) for a, b in pairs), default=0.0)
        n_theirs, n_ours = sum(map(len, theirs)), sum(map(len, ours))
        print(f"| {set_name} | {n_theirs} / {n_ours} | {identical} | {close} | {worst:.1e} |")

    with tempfile.TemporaryDirectory() as folder:
        path, info = converted_model(folder)
        size = path.stat().st_size / 1e6
    print(f"\nconversion of mmod_human_face_detector.dat to ONNX: {info['conversion_seconds']:.2f} s ({size:.2f} MB)")


if __name__ == "__main__":
    main()
