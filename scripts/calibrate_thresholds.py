"""Calibrate facegate's packaged decision curves on LFW View 1's training people.

For every built-in model and metric it embeds every image, under
``../shared/data/lfw/images``, of the people that ``pairsDevTrain.txt`` names (2,132
people, 3,443 images), compares every image with every other, and stores, for each
kind of score:

- ``distance``: the FMR curve of plain distances over every cross-identity pair of
  the training people (about 5.9 million impostor pairs) and the FNMR over every
  same-identity pair;
- ``asnorm`` (dlib-resnet): the training people are split in two halves by a seeded
  shuffle; one half's images are the cohort (shipped as
  ``data/cohort-<model>.npy``), the other half's pairs give the curve of normalised
  scores;
- for each: the effective number of independent templates of a person enrolled
  with 2 to 5 photos (``template_effect``) and of a gallery of 3 to 1,000 people
  (``gallery_effect``), measured on the same people.

The default score is the one with the lower FNMR at the default FMR on the
calibration half. For reference the entry also keeps the highest-accuracy
threshold on the 2,200 DevTrain pairs.

DevTest's people are left untouched for the figures in the README.

    .venv/bin/python scripts/calibrate_thresholds.py [--lfw ../shared/data/lfw] [--cache runs/cache]
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import people_images, read_pairs
from facegate.decisions import DEFAULT_FMR, DEFAULT_FUSION
from facegate.decisions.normalisation import TOP_K, AsNorm, cohort_bytes
from facegate.distances import METRICS, get_metric
from facegate.evaluate.cache import embed_files
from facegate.evaluate.curves import Scorer, curve_from_labelled, gallery_effect, template_effect
from facegate.evaluate.metrics import best_threshold
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_TTA

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "facegate" / "data"
TABLE = DATA / "thresholds.json"
#: model: (detector, whether a cohort-normalised score is calibrated too)
MODELS = {"dlib-resnet": (DEFAULT_DETECTOR, True), "pixels": (DEFAULT_DETECTOR, False)}
CALIBRATED_ON = "LFW View 1 training people (pairsDevTrain.txt's people, all their images)"
SPLIT_SEED = 0


def split_people(labels: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """A boolean mask of the images of a seeded random half of the people (the cohort half)."""
    people = np.unique(labels)
    np.random.default_rng(seed).shuffle(people)
    return np.isin(labels, people[: len(people) // 2])


def measure(vectors, labels, scorer: Scorer, provenance: dict) -> dict:
    """One score kind's curve, template effect and gallery effect."""
    curve, _ = curve_from_labelled(vectors, labels, scorer, provenance)
    t = curve.threshold_for(DEFAULT_FMR)
    return {
        "curve": curve,
        "template_effect": template_effect(vectors, labels, scorer, DEFAULT_FUSION, t, curve.fmr_at(t)),
        "gallery_effect": gallery_effect(vectors, labels, scorer, curve),
    }


def report(model: str, metric: str, kind: str, measured: dict) -> None:
    curve = measured["curve"]
    points = ", ".join(
        f"FMR {p['fmr']:g}: {p['threshold']:.4f} (FNMR {p['fnmr']:.4f})" for p in curve.operating_points()
    )
    print(f"{model:12s} {metric:13s} {kind:8s} {curve.n_impostor} impostor / {curve.n_genuine} genuine pairs; {points}")
    print(f"{'':36s}template effect {measured['template_effect']}")
    print(f"{'':36s}gallery effect {measured['gallery_effect']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    args = parser.parse_args()

    paths, people = people_images(args.lfw, "pairsDevTrain.txt")
    labels = np.array(people)
    dev_pairs = read_pairs(args.lfw / "pairsDevTrain.txt")
    table: dict[str, dict[str, dict]] = {}
    for model, (detector, with_norm) in MODELS.items():
        embedded = embed_files(paths, model, detector, tta=DEFAULT_TTA, cache_dir=args.cache, progress=True)
        ok = embedded.ok
        vectors, y = embedded.vectors[ok], labels[ok]
        cohort_half = split_people(y)
        cohort_name = f"cohort-{model}.npy"
        if with_norm:
            (DATA / cohort_name).write_bytes(cohort_bytes(vectors[cohort_half]))
        where = {p: i for i, p in enumerate(embedded.paths)}
        a = np.array([where[str(args.lfw / "images" / p.first)] for p in dev_pairs])
        b = np.array([where[str(args.lfw / "images" / p.second)] for p in dev_pairs])
        both = ok[a] & ok[b]
        for metric in METRICS.names():
            base = {"calibrated_on": CALIBRATED_ON, "model": model, "metric": metric, "detector": detector}
            base |= {"flip_tta": DEFAULT_TTA, "fusion": DEFAULT_FUSION, "date": date.today().isoformat()}
            everyone = base | {"people": int(len(np.unique(y))), "images": int(ok.sum())}
            scores = {"distance": measure(vectors, y, Scorer(metric), everyone)}
            report(model, metric, "distance", scores["distance"])
            default = "distance"
            if with_norm:
                half = ~cohort_half
                norm = AsNorm(vectors[cohort_half], metric, TOP_K)
                provenance = base | {
                    "people": int(len(np.unique(y[half]))),
                    "images": int(half.sum()),
                    "cohort": f"{int(cohort_half.sum())} images of the other {len(np.unique(y[cohort_half]))} people",
                }
                scores["asnorm"] = measure(vectors[half], y[half], Scorer(metric, norm), provenance)
                scores["asnorm"] |= {"cohort": cohort_name, "top_k": TOP_K}
                report(model, metric, "asnorm", scores["asnorm"])
                plain, _ = curve_from_labelled(vectors[half], y[half], Scorer(metric))
                normed = scores["asnorm"]["curve"]
                fnmr_plain = plain.fnmr_at(plain.threshold_for(DEFAULT_FMR))
                fnmr_norm = normed.fnmr_at(normed.threshold_for(DEFAULT_FMR))
                print(
                    f"{'':36s}FNMR at FMR {DEFAULT_FMR:g} on the same half: "
                    f"{fnmr_plain:.4f} plain, {fnmr_norm:.4f} asnorm"
                )
                default = "asnorm" if fnmr_norm < fnmr_plain else "distance"
            pair_d = get_metric(metric)(embedded.vectors[a[both]], embedded.vectors[b[both]])
            accuracy_t, accuracy = best_threshold(pair_d, np.array([p.same for p in dev_pairs])[both])
            table.setdefault(model, {})[metric] = {
                "calibrated_on": CALIBRATED_ON,
                "detector": detector,
                "flip_tta": DEFAULT_TTA,
                "default_score": default,
                "scores": {k: v | {"curve": v["curve"].to_dict()} for k, v in scores.items()},
                "accuracy_threshold": {
                    "threshold": round(accuracy_t, 4),
                    "rule": "highest accuracy on pairsDevTrain.txt",
                    "accuracy": round(accuracy, 4),
                },
            }
    payload = {
        "about": "FMR curves per (model, metric), written by scripts/calibrate_thresholds.py",
        "date": date.today().isoformat(),
        "thresholds": table,
    }
    TABLE.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {TABLE} ({TABLE.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
