"""Fine-tune nn4.small2 on ORL (30 people) and report verification on the 10 held out.

Starts from the exercise's CSV folder, which lacks 5 layers (they start random and
everything from inception_3c on trains), or from random weights with ``--random``
(every layer trains). Accuracy is on balanced pairs of the held-out people's photos,
with the threshold chosen by 10-fold cross-validation.

    .venv/bin/python bench/orl_finetune.py [--epochs 5] [--time-budget S] [--random]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from facegate.learn.training.faces import FinetuneConfig, finetune_faces, load_face_folder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orl", type=Path, default=DATA / "orl")
    parser.add_argument("--weights", type=Path, default=DATA / "happyhouse" / "weights")
    parser.add_argument("--random", action="store_true", help="start from random weights")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--time-budget", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--crop", choices=["align", "whole"], default="align")
    args = parser.parse_args()

    start = time.perf_counter()
    faces = load_face_folder(args.orl, crop=args.crop)
    loaded = time.perf_counter() - start
    config = FinetuneConfig(
        epochs=args.epochs, time_budget=args.time_budget, seed=args.seed, threads=args.threads, crop=args.crop
    )
    result = finetune_faces(faces, None if args.random else args.weights, config, log=print)
    wall = time.perf_counter() - start

    b, a = result.before, result.after
    print(f"\n## nn4.small2 fine-tuned on ORL, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    origin = "random weights" if args.random else f"{args.weights} (missing: {len(result.missing_layers)} layers)"
    print(f"start: {origin}")
    print(
        f"trained from {result.trained_from}; {result.steps} steps ({result.epochs:.1f} epochs) of 8 people x 4 photos"
    )
    print(
        f"photos: {len(faces.chips)} ({faces.detected} with a HOG face, crop={args.crop}), loaded in {loaded:.1f} s\n"
    )
    print("| held-out (10 people) | before | after |")
    print("|---|---:|---:|")
    print(f"| verification accuracy (10-fold) | {b.accuracy:.3f} | {a.accuracy:.3f} |")
    print(f"| ROC AUC | {b.auc:.3f} | {a.auc:.3f} |")
    print(f"| triplet loss, all triplets | {b.loss:.4f} | {a.loss:.4f} |")
    print(f"| training-batch triplet loss | {result.train_loss_before:.4f} | {result.train_loss_after:.4f} |")
    print(f"\ntraining {result.train_seconds:.1f} s; wall time {wall:.1f} s (loading and evaluation included)")


if __name__ == "__main__":
    main()
