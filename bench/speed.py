"""Speed of the core pipeline on this machine, printed as a table.

1. detect + align + embed on LFW View 1 images: one image at a time versus
   ``represent_many`` (batched, one worker process per core), side by side in one
   run, with the peak memory of this process (one pipeline: each worker holds about as much).
2. Identification latency (the vectorised search, no photo decoding) against
   galleries of 1k, 10k and 100k templates of random unit vectors.

    .venv/bin/python bench/speed.py [--images 200] [--lfw ../shared/data/lfw]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import facegate
from facegate.datasets.lfw import pair_images, read_pairs
from facegate.gallery import Gallery
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA, tta_name

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def pipeline_speed(paths: list[Path]) -> None:
    facegate.represent(paths[0])  # load the models once, outside the timing
    start = time.perf_counter()
    cpu0 = time.process_time()
    for p in paths:
        with contextlib.suppress(facegate.FacegateError):
            facegate.represent(p)
    one = time.perf_counter() - start
    one_cpu = time.process_time() - cpu0
    start = time.perf_counter()
    facegate.represent_many(paths, batch_size=16)
    many = time.perf_counter() - start
    n = len(paths)
    print(
        f"\n## detect + align + embed, {n} LFW images, {os.cpu_count()} cores (default pipeline: "
        f"{DEFAULT_MODEL}, {DEFAULT_DETECTOR}, {tta_name(DEFAULT_TTA)} TTA)\n"
    )
    print("| mode | images/s | ms/image | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| one at a time (`represent`) | {n / one:.2f} | {1000 * one / n:.0f} | 1.00x |")
    print(
        f"| batched (`represent_many`, {os.cpu_count()} workers) | {n / many:.2f} | {1000 * many / n:.0f} | "
        f"{one / many:.2f}x |"
    )
    print(f"\nCPU time one at a time: {1000 * one_cpu / n:.0f} ms/image")
    print(f"peak memory of this process (one pipeline; each worker holds about as much): {rss_mb():.0f} MB")


#: (label, Gallery options): the default decisions beside plain distances to the closest template
SEARCHES = [
    ("plain distance, closest template", {"normalise": False, "fusion": "min"}),
    ("default: AS-norm, closest + mean", {}),
]


def identification_latency(sizes: list[int], repeats: int = 50) -> None:
    rng = np.random.default_rng(0)
    print("\n## identification latency (search only, 128-d, euclidean, 5 templates per person)\n")
    print("| templates | people | scoring | median ms | p95 ms | load ms |")
    print("|---:|---:|---|---:|---:|---:|")
    for size in sizes:
        vectors = rng.normal(size=(size, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = vectors[rng.integers(0, size, repeats)] + rng.normal(scale=0.02, size=(repeats, 128))
        with tempfile.TemporaryDirectory() as tmp:
            with Gallery(Path(tmp) / "g.sqlite") as gallery:
                gallery.add_embeddings_bulk({f"person{i:06d}": vectors[i * 5 : (i + 1) * 5] for i in range(size // 5)})
            for label, options in SEARCHES:
                t = time.perf_counter()
                gallery = Gallery(Path(tmp) / "g.sqlite", **options)  # loading builds the index and statistics
                load = 1000 * (time.perf_counter() - t)
                times = []
                for q in queries.astype(np.float32):
                    t = time.perf_counter()
                    gallery.search(q, top_k=5)
                    times.append(1000 * (time.perf_counter() - t))
                gallery.close()
                row = f"| {size:,} | {size // 5:,} | {label} | {np.median(times):.2f} | {np.percentile(times, 95):.2f}"
                print(f"{row} | {load:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    if not args.skip_pipeline:
        names = pair_images(read_pairs(args.lfw / "pairsDevTest.txt"))[: args.images]
        pipeline_speed([args.lfw / "images" / n for n in names])
    identification_latency([1_000, 10_000, 100_000])


if __name__ == "__main__":
    main()
