"""Calibrate facegate's packaged threshold table on LFW View 1 (pairsDevTrain.txt).

For every built-in model and every metric it embeds the DevTrain images, picks the
threshold of highest accuracy on the 1,100 genuine + 1,100 impostor pairs, and
writes src/facegate/data/thresholds.json with how each value was obtained. DevTest
is left untouched for the accuracy figures.

    .venv/bin/python scripts/calibrate_thresholds.py [--lfw ../shared/data/lfw]
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import pair_images, read_pairs
from facegate.distances import METRICS, get_metric
from facegate.evaluate.cache import embed_files
from facegate.evaluate.metrics import best_threshold, eer, fnmr_at_fmr
from facegate.pipeline import DEFAULT_TTA

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "src" / "facegate" / "data" / "thresholds.json"
MODELS = {"dlib-resnet": "hog", "pixels": "hog"}


def pair_distances(pairs, embedded, metric: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Distances and labels of the pairs whose two images both gave an embedding."""
    index = embedded.index()
    a = np.array([index[p.first] for p in pairs])
    b = np.array([index[p.second] for p in pairs])
    labels = np.array([p.same for p in pairs])
    ok = embedded.ok[a] & embedded.ok[b]
    d = get_metric(metric)(embedded.vectors[a[ok]], embedded.vectors[b[ok]])
    return d, labels[ok], int((~ok).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    args = parser.parse_args()

    pairs = read_pairs(args.lfw / "pairsDevTrain.txt")
    paths = [str(args.lfw / "images" / p) for p in pair_images(pairs)]
    rel = {str(args.lfw / "images" / p): p for p in pair_images(pairs)}
    table: dict[str, dict[str, dict]] = {}
    for model, detector in MODELS.items():
        embedded = embed_files(paths, model, detector, tta=DEFAULT_TTA, cache_dir=args.cache, progress=True)
        embedded = type(embedded)(
            [rel[p] for p in embedded.paths], embedded.vectors, embedded.errors, embedded.boxes, model, detector
        )
        for metric in METRICS.names():
            d, y, dropped = pair_distances(pairs, embedded, metric)
            threshold, train_acc = best_threshold(d, y)
            rate, _ = eer(d, y)
            at_1e2 = fnmr_at_fmr(d, y, 1e-2)
            table.setdefault(model, {})[metric] = {
                "threshold": round(threshold, 4),
                "calibrated_on": "LFW View 1 pairsDevTrain.txt",
                "rule": "highest accuracy",
                "detector": detector,
                "flip_tta": DEFAULT_TTA,
                "train_accuracy": round(train_acc, 4),
                "train_eer": round(rate, 4),
                "train_fnmr_at_fmr_1e-2": None if at_1e2 is None else round(at_1e2[0], 4),
                "pairs_used": int(len(d)),
                "pairs_without_face": dropped,
            }
            print(
                f"{model:12s} {metric:13s} threshold {threshold:.4f}  train acc {train_acc:.4f}  EER {rate:.4f}"
                f"  ({dropped} pairs without a face)"
            )
    payload = {
        "about": "Thresholds per (model, metric), written by scripts/calibrate_thresholds.py",
        "date": date.today().isoformat(),
        "thresholds": table,
    }
    TABLE.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
