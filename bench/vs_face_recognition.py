"""facegate beside face_recognition, on the same LFW images, in one run.

Both run dlib's ResNet on 5-point chips: face_recognition through dlib (HOG with one
level of upsampling, 1 jitter, every face of a photo), facegate's default pipeline
(its default detector, the main face, flip TTA, ONNX Runtime). Speed is measured in
rounds that alternate between the two, each round in a fresh child process per
system (models loaded before the clock starts), so the machine's noise falls on both
and each child's peak memory is its system's alone. 1 process: one child encodes the
round's images one by one; 2 processes: the child spreads them over 2 workers.

With ``--accuracy``, face_recognition's LFW View 1 accuracy is measured the way
``bench/lfw_accuracy.py`` measures facegate's: threshold of highest accuracy on
pairsDevTrain, reported on pairsDevTest, a pair without a face counts as an error
(face_recognition's first face of each image, as its examples use it).

Needs face_recognition in the same environment, without its dependencies (they are
facegate's already): ``.venv/bin/pip install --no-deps face_recognition``.

    .venv/bin/python bench/vs_face_recognition.py [--images 500] [--rounds 5] [--door 50] [--accuracy]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = {
    "face_recognition": "face_recognition (HOG, upsample 1, 1 jitter)",
    "facegate": "facegate default",
}


def import_face_recognition():
    """face_recognition, with the ``pkg_resources`` its model package asks for (recent
    setuptools no longer ships it) answered from the installed files."""
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, name: str) -> str:
            spec = importlib.util.find_spec(package)
            return str(Path(next(iter(spec.submodule_search_locations))) / name)

        shim.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    try:
        import face_recognition
    except ImportError as exc:
        raise SystemExit("install it first: .venv/bin/pip install --no-deps face_recognition") from exc
    return face_recognition


def fr_encode(path: str) -> int:
    fr = import_face_recognition()
    return len(fr.face_encodings(fr.load_image_file(path)))


def fg_encode(path: str) -> int:
    import facegate

    try:
        return len(facegate.represent(path))
    except facegate.FacegateError:
        return 0


ENCODERS = {"face_recognition": fr_encode, "facegate": fg_encode}


def child(system: str, processes: int, paths: list[str]) -> dict:
    """In a fresh process: encode ``paths`` (after a warm-up), and say what it cost."""
    encode = ENCODERS[system]
    encode(paths[0])
    cpu, wall = time.process_time(), time.perf_counter()
    if processes == 1:
        faces = sum(encode(p) for p in paths)
    else:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(encode, paths[:processes]))
            wall = time.perf_counter()
            faces = sum(pool.map(encode, paths, chunksize=8))
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "faces": faces,
        "peak_mb": max(me.ru_maxrss, kids.ru_maxrss) / 1024,
    }


def run_child(system: str, processes: int, paths: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", system, str(processes)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[-1])


def door_latencies(fr, gallery_paths: list[str], probe: str, repeats: int) -> dict[str, np.ndarray]:
    """ms per door check (decode, detect, embed, match against a 100-person gallery), warm, alternating."""
    import facegate

    known = [e for p in gallery_paths for e in fr.face_encodings(fr.load_image_file(p))[:1]]
    with facegate.Gallery(":memory:") as gallery:
        vectors = facegate.represent_many(gallery_paths, workers=1)
        gallery.add_embeddings_bulk(
            {f"p{i}": v[0].embedding[None] for i, v in enumerate(vectors) if isinstance(v, list)}
        )
        name = next(iter(gallery.people())).name
        gallery.verify_identity(probe, name)
        out = {"face_recognition": [], "facegate": []}
        for _ in range(repeats):
            start = time.perf_counter()
            encodings = fr.face_encodings(fr.load_image_file(probe))
            fr.compare_faces(known, encodings[0])
            out["face_recognition"].append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            gallery.verify_identity(probe, name)
            out["facegate"].append(1000 * (time.perf_counter() - start))
    return {k: np.array(v) for k, v in out.items()}


def fr_first_face(path: str) -> list[float] | None:
    fr = import_face_recognition()
    found = fr.face_encodings(fr.load_image_file(path))
    return [float(v) for v in found[0]] if found else None


def face_recognition_accuracy(lfw: Path, cache: Path) -> tuple[float, float, float, int]:
    """face_recognition's pairsDevTest accuracy, EER and threshold (from pairsDevTrain), and images without a face."""
    from facegate.datasets.lfw import pair_images, read_pairs
    from facegate.evaluate.metrics import best_threshold, eer

    train, test = read_pairs(lfw / "pairsDevTrain.txt"), read_pairs(lfw / "pairsDevTest.txt")
    paths = sorted({str(lfw / "images" / p) for p in pair_images(train) + pair_images(test)})
    file = cache / "face_recognition-lfw-view1.json"
    known = json.loads(file.read_text()) if file.is_file() else {}
    todo = [p for p in paths if p not in known]
    if todo:
        with ProcessPoolExecutor(2) as pool:
            known.update(zip(todo, pool.map(fr_first_face, todo, chunksize=16), strict=True))
        cache.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(known))

    def scores(pairs):
        d = []
        for p in pairs:
            a, b = known[str(lfw / "images" / p.first)], known[str(lfw / "images" / p.second)]
            d.append(np.inf if a is None or b is None else float(np.linalg.norm(np.subtract(a, b))))
        return np.array(d), np.array([p.same for p in pairs])

    d_train, y_train = scores(train)
    ok = np.isfinite(d_train)
    threshold, _ = best_threshold(d_train[ok], y_train[ok])
    d, y = scores(test)
    test_paths = {str(lfw / "images" / p) for p in pair_images(test)}
    missing = sum(1 for p in test_paths if known[p] is None)
    return float(((d <= threshold) == y).mean()), eer(d[np.isfinite(d)], y[np.isfinite(d)])[0], threshold, missing


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), json.loads(sys.stdin.read()))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds the images are split into")
    parser.add_argument("--door", type=int, default=50, help="door checks timed per system")
    parser.add_argument("--accuracy", action="store_true", help="also face_recognition's LFW View 1 accuracy")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "cache")
    args = parser.parse_args()
    fr = import_face_recognition()
    everything = sorted(str(p) for p in (args.lfw / "images").glob("*/*.jpg"))
    paths = everything[: args.images]
    rounds = [paths[i :: args.rounds] for i in range(args.rounds)]

    totals = {(s, n): {"cpu": 0.0, "wall": 0.0, "faces": 0, "peak_mb": 0.0} for s in SYSTEMS for n in (1, 2)}
    for chunk in rounds:
        for processes in (1, 2):
            for system in SYSTEMS:
                got = run_child(system, processes, chunk)
                total = totals[(system, processes)]
                for key in ("cpu", "wall", "faces"):
                    total[key] += got[key]
                total["peak_mb"] = max(total["peak_mb"], got["peak_mb"])
    n = len(paths)
    print(f"\n## {n} LFW images, detect + align + embed ({args.rounds} alternating rounds)\n")
    print(
        "| system | CPU ms/image (1 process) | images/s, 1 process | images/s, 2 processes "
        "| peak MB (1 process) | peak MB per process (2) | faces embedded |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for system, label in SYSTEMS.items():
        one, two = totals[(system, 1)], totals[(system, 2)]
        print(
            f"| {label} | {1000 * one['cpu'] / n:.1f} | {n / one['wall']:.1f} | {n / two['wall']:.1f} "
            f"| {one['peak_mb']:.0f} | {two['peak_mb']:.0f} | {one['faces']} |"
        )
    fr1, fg1 = totals[("face_recognition", 1)], totals[("facegate", 1)]
    fr2, fg2 = totals[("face_recognition", 2)], totals[("facegate", 2)]
    print(
        f"\nfacegate / face_recognition: CPU per image {fr1['cpu'] / fg1['cpu']:.2f}x less; images/s "
        f"{fr1['wall'] / fg1['wall']:.2f}x (1 process), {fr2['wall'] / fg2['wall']:.2f}x (2 processes)"
    )

    latencies = door_latencies(fr, everything[-100:], everything[-101], args.door)
    print(f"\n## door check, one photo against 100 people, warm ({args.door} checks, alternating)\n")
    print("| system | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, ms in latencies.items():
        print(f"| {name} | {np.median(ms):.1f} | {np.percentile(ms, 95):.1f} |")

    if args.accuracy:
        accuracy, rate, threshold, missing = face_recognition_accuracy(args.lfw, args.cache)
        print("\n## face_recognition on LFW View 1 pairsDevTest (threshold from pairsDevTrain)\n")
        print("| system | accuracy | EER | threshold | images without a face |")
        print("|---|---:|---:|---:|---:|")
        label = SYSTEMS["face_recognition"]
        print(f"| {label} | {100 * accuracy:.2f}% | {100 * rate:.2f}% | {threshold:.4f} | {missing} |")


if __name__ == "__main__":
    main()
