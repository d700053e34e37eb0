"""Which test-time augmentation buys accuracy on dlib's ResNet, and at what CPU cost.

Every LFW View 1 image is detected once (the default HOG search) and then cut into
chips under a fixed set of small, deterministic perturbations of dlib's 5-point
alignment (shifts of 2% of the face, scales of 3%, rotations of 3 degrees: the range
of dlib's own ``jitter_image``), each also mirrored, plus dlib's 68-point alignment;
every chip is embedded once (ONNX engine) and kept in ``--cache``. A pipeline is a
subset of those chips whose embeddings are averaged.

Pipelines are ranked on pairsDevTrain (accuracy at the best threshold, 10-fold
cross-validated, so that the choice does not see the test pairs) and then reported on
pairsDevTest at the threshold of highest accuracy on pairsDevTrain; a pair with an
image whose face was not found counts as an error. CPU per image is the default
pipeline's measured detection cost plus one network pass per chip, timed in this run.

    .venv/bin/python bench/tta_search.py --cache runs/cache [--workers 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import pair_images, read_pairs
from facegate.evaluate.cache import file_key
from facegate.evaluate.metrics import best_threshold, eer

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Perturbation:
    """A change of dlib's chip: centre shift (fraction of the chip's side), scale (>1:
    more of the surroundings), extra rotation (degrees), mirror."""

    name: str
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    degrees: float = 0.0


PERTURBATIONS = [
    Perturbation("id"),
    Perturbation("left", dx=-0.02),
    Perturbation("right", dx=0.02),
    Perturbation("up", dy=-0.02),
    Perturbation("down", dy=0.02),
    Perturbation("in", scale=0.97),
    Perturbation("out", scale=1.03),
    Perturbation("ccw", degrees=-3.0),
    Perturbation("cw", degrees=3.0),
]
#: chip names: each perturbation, then mirrored ("~"), then the 68-point alignment and its mirror
CHIPS = [p.name for p in PERTURBATIONS] + [f"~{p.name}" for p in PERTURBATIONS] + ["68", "~68"]


def chips_of(image: np.ndarray, face) -> list[np.ndarray]:
    import dlib

    from facegate.detection.landmarks import dlib_rect
    from facegate.resources import shape_predictor_68

    rect = dlib_rect(face.x, face.y, face.w, face.h)
    shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks])
    base = dlib.get_face_chip_details(shape, 150, 0.25)
    details = []
    for p in PERTURBATIONS:
        r = base.rect
        cx, cy, w, h = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2, r.width(), r.height()
        cx, cy, w, h = cx + p.dx * w, cy + p.dy * h, w * p.scale, h * p.scale
        box = dlib.drectangle(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        details.append(dlib.chip_details(box, dlib.chip_dims(150, 150), base.angle + np.deg2rad(p.degrees)))
    details.append(dlib.get_face_chip_details(shape_predictor_68()(image, rect), 150, 0.25))
    chips = dlib.extract_image_chips(np.ascontiguousarray(image), details)
    chips = [np.asarray(c) for c in chips]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in chips]
    n = len(PERTURBATIONS)
    return chips[:n] + mirrored[:n] + [chips[n], mirrored[n]]


def embed_chunk(paths: list[str]) -> list[tuple[np.ndarray | None, float]]:
    """Per image: its (len(CHIPS), 128) raw descriptors (None: no face), and detection CPU seconds."""
    from facegate.images import load_image
    from facegate.models.engines import get_engine
    from facegate.pipeline import detect_faces

    engine = get_engine("onnx")
    out = []
    for path in paths:
        start = time.process_time()
        image = load_image(path)
        faces = detect_faces(image)
        spent = time.process_time() - start
        if not faces:
            out.append((None, spent))
            continue
        out.append((engine.descriptors(chips_of(image, faces[0])), spent))
    return out


def embed_all(paths: list[str], cache: Path, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, len(CHIPS), 128) descriptors (NaN rows: no face) for every path, cached."""
    file = cache / "tta-search-v1.npz"
    known: dict[str, np.ndarray] = {}
    if file.is_file():
        with np.load(file) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    keys = [file_key(p) for p in paths]
    todo = [p for p, k in zip(paths, keys, strict=True) if k not in known]
    if todo:
        chunks = [todo[i : i + 32] for i in range(0, len(todo), 32)]
        from tqdm import tqdm

        with ProcessPoolExecutor(workers) as pool, tqdm(total=len(todo), unit="img") as bar:
            for chunk, result in zip(chunks, pool.map(embed_chunk, chunks), strict=True):
                for path, (vectors, _) in zip(chunk, result, strict=True):
                    missing = np.full((len(CHIPS), 128), np.nan, np.float32)
                    known[file_key(path)] = missing if vectors is None else vectors
                bar.update(len(chunk))
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(file, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[k] for k in keys])


def pipeline_vectors(raw: np.ndarray, chips: list[str]) -> np.ndarray:
    """Average of the unit-length embeddings of the named chips, made unit length."""
    picked = raw[:, [CHIPS.index(c) for c in chips]]
    picked = picked / np.linalg.norm(picked, axis=2, keepdims=True)
    mean = picked.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def distances(vectors: np.ndarray, index: dict[str, int], pairs, images: Path):
    a = np.array([index[str(images / p.first)] for p in pairs])
    b = np.array([index[str(images / p.second)] for p in pairs])
    d = np.linalg.norm(vectors[a] - vectors[b], axis=1)
    same = np.array([p.same for p in pairs])
    return np.where(np.isnan(d), np.inf, d), same


def cv_accuracy(d: np.ndarray, same: np.ndarray, folds: int = 10) -> float:
    order = np.random.default_rng(0).permutation(len(d))
    right = 0
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        ok = np.isfinite(d[train])
        threshold, _ = best_threshold(d[train][ok], same[train][ok])
        right += int(((d[test] <= threshold) == same[test]).sum())
    return right / len(d)


PIPELINES: dict[str, list[str]] = {
    "plain": ["id"],
    "flip (the default)": ["id", "~id"],
    "68-point alignment": ["68"],
    "68-point + flip": ["68", "~68"],
    "5-point and 68-point, + flip": ["id", "~id", "68", "~68"],
    "shifts (5)": ["id", "left", "right", "up", "down"],
    "shifts + flip (10)": ["id", "left", "right", "up", "down", "~id", "~left", "~right", "~up", "~down"],
    "scales + flip (6)": ["id", "in", "out", "~id", "~in", "~out"],
    "rotations + flip (6)": ["id", "ccw", "cw", "~id", "~ccw", "~cw"],
    "all 9 perturbations (9)": [p.name for p in PERTURBATIONS],
    "all 9 + flip (18)": [p.name for p in PERTURBATIONS] + [f"~{p.name}" for p in PERTURBATIONS],
    "all 9 + flip + 68-point (20)": CHIPS,
    "scale out + flip (2)": ["out", "~out"],
    "id + out + flip (4)": ["id", "out", "~id", "~out"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "cache")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cost-images", type=int, default=60)
    args = parser.parse_args()
    images = args.lfw / "images"
    train, test = read_pairs(args.lfw / "pairsDevTrain.txt"), read_pairs(args.lfw / "pairsDevTest.txt")
    paths = sorted({str(images / p) for p in pair_images(train) + pair_images(test)})
    index = {p: i for i, p in enumerate(paths)}
    raw = embed_all(paths, args.cache, args.workers)

    # CPU: detection (+ decode, landmarks) per image, and one network pass per chip
    sample = paths[: args.cost_images]
    detection = np.mean([s for _, s in embed_chunk(sample)])
    from facegate.models.engines import get_engine

    engine = get_engine("onnx")
    chip = np.zeros((150, 150, 3), np.uint8)
    engine.descriptors([chip])
    start = time.process_time()
    for _ in range(50):
        engine.descriptors([chip, chip])
    per_pass = (time.process_time() - start) / 100

    rows = []
    for label, chips in PIPELINES.items():
        vectors = pipeline_vectors(raw, chips)
        d_train, y_train = distances(vectors, index, train, images)
        d_test, y_test = distances(vectors, index, test, images)
        ok = np.isfinite(d_train)
        threshold, _ = best_threshold(d_train[ok], y_train[ok])
        accuracy = float(((d_test <= threshold) == y_test).mean())
        rate, _ = eer(d_test[np.isfinite(d_test)], y_test[np.isfinite(d_test)])
        cpu = detection + len(chips) * per_pass
        rows.append((label, len(chips), cv_accuracy(d_train, y_train), accuracy, rate, threshold, cpu))
    print(f"\ndetection {1000 * detection:.1f} ms/image, one network pass {1000 * per_pass:.1f} ms\n")
    print("| pipeline | chips | DevTrain 10-fold acc | DevTest acc | DevTest EER | threshold | CPU ms/image |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, n, cv, accuracy, rate, threshold, cpu in rows:
        print(
            f"| {label} | {n} | {100 * cv:.2f}% | {100 * accuracy:.2f}% | {100 * rate:.2f}% | {threshold:.4f} "
            f"| {1000 * cpu:.1f} |"
        )


if __name__ == "__main__":
    main()
