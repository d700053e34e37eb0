"""LFW View 1 accuracy of facegate's pipelines, side by side, with their CPU cost.

Every variant is scored the same way: its threshold is the one of highest accuracy
on pairsDevTrain (1,100 + 1,100 pairs), and it is tested on pairsDevTest (500 + 500
pairs) where a pair with an image whose face is not found counts as an error.
Reported per variant: DevTest accuracy, EER, the threshold, failures to find a face,
and CPU seconds per image relative to the plain HOG pass (measured in this run).

    .venv/bin/python bench/lfw_accuracy.py [--variants all|fast] [--cache DIR]

``--cache`` reuses embeddings from an earlier run (then CPU times are not
measured again and show as '-').
"""

from __future__ import annotations

import argparse
import resource
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import pair_images, read_pairs
from facegate.distances import get_metric
from facegate.evaluate.cache import embed_files
from facegate.evaluate.metrics import best_threshold, eer

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    label: str
    model: str
    detector: str
    tta: bool
    metric: str = "euclidean"


VARIANTS = [
    Variant("pixels (raw aligned pixels)", "pixels", "hog", False, "euclidean_l2"),
    Variant("dlib-resnet, hog", "dlib-resnet", "hog", False),
    Variant("dlib-resnet, hog + flip TTA", "dlib-resnet", "hog", True),
    Variant("dlib-resnet, hog→cnn fallback", "dlib-resnet", "hog+cnn", False),
    Variant("dlib-resnet, hog→cnn fallback + flip TTA", "dlib-resnet", "hog+cnn", True),
    Variant("dlib-resnet, cnn", "dlib-resnet", "cnn", False),
]


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def scores(pairs, embedded, images: Path, metric: str):
    index = {p: i for i, p in enumerate(embedded.paths)}
    a = np.array([index[str(images / p.first)] for p in pairs])
    b = np.array([index[str(images / p.second)] for p in pairs])
    same = np.array([p.same for p in pairs])
    ok = embedded.ok[a] & embedded.ok[b]
    d = np.full(len(pairs), np.inf)
    d[ok] = get_metric(metric)(embedded.vectors[a[ok]], embedded.vectors[b[ok]])
    return d, same, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument(
        "--variants",
        choices=["all", "fast"],
        default="all",
        help="fast: skip the CNN-only variant (about 1 s per image per core)",
    )
    args = parser.parse_args()
    images = args.lfw / "images"
    train, test = read_pairs(args.lfw / "pairsDevTrain.txt"), read_pairs(args.lfw / "pairsDevTest.txt")
    train_paths = [str(images / p) for p in pair_images(train)]
    test_paths = [str(images / p) for p in pair_images(test)]
    variants = [v for v in VARIANTS if args.variants == "all" or v.detector != "cnn"]

    rows = []
    base_cost = None
    for v in variants:
        start = cpu_seconds()
        kw = dict(cache_dir=args.cache, use_cache=args.cache is not None, progress=True)
        emb_test = embed_files(test_paths, v.model, v.detector, v.tta, **kw)
        cost = (cpu_seconds() - start) / len(test_paths) if args.cache is None else None
        # the CNN is only scored at the HOG threshold (calibrating it on DevTrain costs an hour of CPU)
        if v.detector == "cnn":
            threshold = next(r["threshold"] for r in rows if r["variant"].model == v.model and not r["variant"].tta)
        else:
            emb_train = embed_files(train_paths, v.model, v.detector, v.tta, **kw)
            d_train, y_train, ok_train = scores(train, emb_train, images, v.metric)
            threshold, _ = best_threshold(d_train[ok_train], y_train[ok_train])
        d, y, ok = scores(test, emb_test, images, v.metric)
        accuracy = float((((d <= threshold) == y) & ok).mean())  # a pair without a face is an error
        rate, _ = eer(d[ok], y[ok])
        if v.model == "dlib-resnet" and v.detector == "hog" and not v.tta:
            base_cost = cost
        rows.append(
            {
                "variant": v,
                "threshold": threshold,
                "accuracy": accuracy,
                "eer": rate,
                "no_face": emb_test.n_failed,
                "cost": cost,
            }
        )

    print("\n## LFW View 1 pairsDevTest (1,000 pairs), threshold from pairsDevTrain\n")
    print("| pipeline | accuracy | EER | threshold (metric) | images without a face | CPU s/image | CPU vs hog |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        v = r["variant"]
        cost = "-" if r["cost"] is None else f"{r['cost']:.3f}"
        ratio = "-" if r["cost"] is None or not base_cost else f"{r['cost'] / base_cost:.2f}x"
        print(
            f"| {v.label} | {100 * r['accuracy']:.2f}% | {100 * r['eer']:.2f}% | {r['threshold']:.4f} ({v.metric}) "
            f"| {r['no_face']} / {len(test_paths)} | {cost} | {ratio} |"
        )
    print(
        "\naccuracy counts a pair with an image whose face was not found as an error; EER is over the pairs "
        "where both faces were found."
    )


if __name__ == "__main__":
    main()
