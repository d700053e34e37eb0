"""LFW View 1 accuracy of facegate's pipelines, side by side, with their CPU cost.

Every variant is scored the same way: its threshold is the one of highest accuracy
on pairsDevTrain (1,100 + 1,100 pairs), and it is tested on pairsDevTest (500 + 500
pairs), where a pair with an image whose face was not found counts as an error.

"largest face" takes the largest face of a photo with several, "main face" the
largest weighted by nearness to the centre (facegate's default policy). The
hog→cnn fallback variants use the ``hog+cnn`` detector: the CNN (dlib's MMOD net on
ONNX Runtime) searches only the images where HOG found no face.

CPU cost is measured apart, in this same run, on the first ``--cost-images`` DevTest
images without any cache, and given relative to the plain HOG pass.

    .venv/bin/python bench/lfw_accuracy.py [--cache DIR] [--cost-images 100]
"""

from __future__ import annotations

import argparse
import resource
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import pair_images, read_pairs
from facegate.distances import get_metric
from facegate.evaluate.cache import Embedded, embed_files
from facegate.evaluate.metrics import best_threshold, eer

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    label: str
    model: str
    detector: str
    tta: bool
    multi_face: str = "main"
    metric: str = "euclidean"


VARIANTS = [
    Variant("pixels (raw aligned pixels)", "pixels", "hog", False, metric="euclidean_l2"),
    Variant("dlib-resnet, hog, largest face", "dlib-resnet", "hog", False, "largest"),
    Variant("dlib-resnet, hog + flip, largest face (the previous default)", "dlib-resnet", "hog", True, "largest"),
    Variant("dlib-resnet, hog, main face", "dlib-resnet", "hog", False),
    Variant("dlib-resnet, hog + flip, main face", "dlib-resnet", "hog", True),
    Variant("dlib-resnet, hog→cnn fallback, main face", "dlib-resnet", "hog+cnn", False),
    Variant("dlib-resnet, hog→cnn fallback + flip, main face (default)", "dlib-resnet", "hog+cnn", True),
    Variant("dlib-resnet, cnn, main face", "dlib-resnet", "cnn", False),
]


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def embed(paths: list[str], v: Variant, cache: Path | None, workers: int | None = None) -> Embedded:
    kw = {"cache_dir": cache, "use_cache": cache is not None, "progress": True, "workers": workers}
    return embed_files(paths, v.model, v.detector, v.tta, multi_face=v.multi_face, **kw)


def pair_scores(pairs, embedded: Embedded, images: Path, metric: str):
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
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder (reused across runs)")
    parser.add_argument("--cost-images", type=int, default=100, help="images timed per variant for the CPU cost")
    args = parser.parse_args()
    images = args.lfw / "images"
    train, test = read_pairs(args.lfw / "pairsDevTrain.txt"), read_pairs(args.lfw / "pairsDevTest.txt")
    train_paths = [str(images / p) for p in pair_images(train)]
    test_paths = [str(images / p) for p in pair_images(test)]

    costs: dict[str, float] = {}
    sample = test_paths[: args.cost_images]
    for v in VARIANTS:
        embed(sample[:3], v, None, workers=1)  # models loaded before the clock starts
        start = cpu_seconds()
        embed(sample, v, None, workers=1)  # in this process, where its CPU time is counted
        costs[v.label] = (cpu_seconds() - start) / len(sample)

    rows = []
    for v in VARIANTS:
        emb_test = embed(test_paths, v, args.cache)
        d_train, y_train, ok_train = pair_scores(train, embed(train_paths, v, args.cache), images, v.metric)
        threshold, _ = best_threshold(d_train[ok_train], y_train[ok_train])
        d, y, ok = pair_scores(test, emb_test, images, v.metric)
        accuracy = float((((d <= threshold) == y) & ok).mean())
        rate, _ = eer(d[ok], y[ok])
        rows.append((v, threshold, accuracy, rate, emb_test.n_failed))

    base = costs["dlib-resnet, hog, main face"]
    print("\n## LFW View 1 pairsDevTest (1,000 pairs), threshold from pairsDevTrain\n")
    print("| pipeline | accuracy | EER | threshold (metric) | images without a face | CPU s/image | CPU vs hog |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v, threshold, accuracy, rate, failed in rows:
        print(
            f"| {v.label} | {100 * accuracy:.2f}% | {100 * rate:.2f}% | {threshold:.4f} ({v.metric}) "
            f"| {failed} / {len(test_paths)} | {costs[v.label]:.3f} | {costs[v.label] / base:.2f}x |"
        )
    print(
        f"\naccuracy counts a pair with an image whose face was not found as an error; EER is over the pairs "
        f"where both faces were found; CPU cost timed on {len(sample)} DevTest images per variant, no cache."
    )


if __name__ == "__main__":
    main()
