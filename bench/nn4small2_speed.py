"""Embedding speed of nn4.small2 (OpenFace) versus dlib-resnet on this CPU, same faces.

Faces come from LFW images (HOG detection, largest face); each model gets its own
aligned chip of the same face (96x96 OpenFace for nn4.small2, 150x150 dlib for
dlib-resnet). Only ``embed`` is timed (best of ``--repeats`` runs over all chips).
nn4.small2 is timed with one PyTorch thread and with PyTorch's default, since on a busy
shared machine extra threads can make it slower. Weights do not change the speed; the
exercise's incomplete CSV folder is used when present, else random weights.

    .venv/bin/python bench/nn4small2_speed.py [--faces 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from facegate.detection import get_detector
from facegate.errors import FacegateError
from facegate.images import load_image
from facegate.learn.models.openface import OpenFaceNN4Small2
from facegate.models import get_model

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def faces_from_lfw(lfw: Path, count: int) -> list[tuple[np.ndarray, object]]:
    found = []
    for person in sorted(p for p in (lfw / "images").iterdir() if p.is_dir()):
        image = load_image(sorted(person.glob("*.jpg"))[0])
        faces = get_detector("hog").detect(image)
        if faces:
            found.append((image, max(faces, key=lambda f: f.area)))
        if len(found) == count:
            break
    return found


def best_rate(embed, chips: list[np.ndarray], repeats: int) -> float:
    embed(chips[:2])  # warm-up (first-call allocations)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = embed(chips)
        best = min(best, time.perf_counter() - start)
        assert out.shape == (len(chips), 128)
    return len(chips) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lfw", type=Path, default=DATA / "lfw")
    args = parser.parse_args()

    faces = faces_from_lfw(args.lfw, args.faces)
    weights = DATA / "happyhouse" / "weights"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nn4 = OpenFaceNN4Small2(weights=str(weights), strict=False)
            source = f"{weights} (partial)"
        except FacegateError:
            nn4 = OpenFaceNN4Small2(allow_random=True)
            source = "random"
    dlib = get_model("dlib-resnet")
    nn4_chips = [nn4.chip(image, face) for image, face in faces]
    dlib_chips = [dlib.chip(image, face) for image, face in faces]

    default_threads = torch.get_num_threads()
    rates = {}
    nn4.threads = 1
    rates["nn4.small2, 1 torch thread"] = best_rate(nn4.embed, nn4_chips, args.repeats)
    nn4.threads = None
    rates[f"nn4.small2, {default_threads} torch threads (default)"] = best_rate(nn4.embed, nn4_chips, args.repeats)
    rates["dlib-resnet"] = best_rate(dlib.embed, dlib_chips, args.repeats)

    dlib_rate = rates["dlib-resnet"]
    load = os.getloadavg()[0]
    print(f"\n## embedding speed, {len(faces)} LFW faces, {os.cpu_count()} cores, load average {load:.1f}\n")
    print(f"nn4.small2 weights: {source}; torch {torch.__version__}\n")
    print("| model | chip | faces/s | ms/face | vs dlib-resnet |")
    print("|---|---|---:|---:|---:|")
    for name, rate in rates.items():
        chip = "96x96" if name.startswith("nn4") else "150x150"
        print(f"| {name} | {chip} | {rate:.1f} | {1000 / rate:.1f} | {rate / dlib_rate:.2f}x |")


if __name__ == "__main__":
    main()
