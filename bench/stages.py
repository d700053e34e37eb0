"""Where the CPU time of one image goes, stage by stage: before (dlib runs the network)
and after (ONNX Runtime runs it), in one run on the same LFW images.

The stages are those of facegate's default pipeline: decode the file, detect faces
(dlib's HOG, searching an upsampled image only where nothing is found), find the 5
landmarks, cut the aligned 150x150 chip, and embed it with the flip (two network
passes). Each is timed with the process's CPU clock, one thread.

    .venv/bin/python bench/stages.py [--images 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facegate.alignment import dlib_chip
from facegate.datasets.lfw import pair_images, read_pairs
from facegate.detection import get_detector
from facegate.detection.base import FacialArea
from facegate.detection.landmarks import five_points
from facegate.images import load_image
from facegate.models.builtin import DlibResNet

REPO = Path(__file__).resolve().parents[1]
STAGES = ["decode", "detect (HOG)", "landmarks (5 points)", "chip", "embed (flip: 2 passes)"]


def timed(fn, *args):
    start = time.process_time()
    out = fn(*args)
    return out, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    pairs = read_pairs(args.lfw / "pairsDevTest.txt")
    paths = [args.lfw / "images" / p for p in pair_images(pairs)][: args.images]
    models = {"dlib": DlibResNet("dlib"), "onnx": DlibResNet("onnx")}
    hog = get_detector("hog")
    warm = np.zeros((150, 150, 3), np.uint8)
    for model in models.values():
        model.embed_tta([warm])
    five_points(warm, 0, 0, 150, 150)

    spent = {stage: [] for stage in STAGES}
    embed = {name: [] for name in models}
    for path in paths:
        image, t = timed(load_image, path)
        spent["decode"].append(t)
        faces, t = timed(hog.find, image)
        spent["detect (HOG)"].append(t)
        if not faces:
            continue
        box = faces[0]
        points, t = timed(five_points, image, box.x, box.y, box.w, box.h)
        spent["landmarks (5 points)"].append(t)
        face = FacialArea(box.x, box.y, box.w, box.h, box.confidence, points)
        chip, t = timed(dlib_chip, image, face)
        spent["chip"].append(t)
        for name, model in models.items():  # alternating, so the machine's noise falls on both
            embed[name].append(timed(model.embed_tta, [chip])[1])

    n = len(paths)
    print(f"\n## CPU ms per image, {n} LFW pairsDevTest images ({len(embed['onnx'])} with a face), one thread\n")
    print("| stage | before: dlib runs the network | after: ONNX Runtime runs it |")
    print("|---|---:|---:|")
    totals = {"dlib": 0.0, "onnx": 0.0}
    for stage in STAGES:
        if stage.startswith("embed"):
            values = {name: 1000 * sum(v) / n for name, v in embed.items()}
        else:
            values = {name: 1000 * sum(spent[stage]) / n for name in models}
        for name in totals:
            totals[name] += values[name]
        print(f"| {stage} | {values['dlib']:.1f} | {values['onnx']:.1f} |")
    print(f"| **total** | **{totals['dlib']:.1f}** | **{totals['onnx']:.1f}** |")
    print(
        f"\nthe network's share: {embed_share(embed['dlib'], totals['dlib'], n)} before, "
        f"{embed_share(embed['onnx'], totals['onnx'], n)} after"
    )


def embed_share(times: list[float], total_ms: float, n: int) -> str:
    return f"{100 * 1000 * sum(times) / n / total_ms:.0f}%"


if __name__ == "__main__":
    main()
