"""facegate beside face_recognition, on the same LFW images, in one run.

Both run dlib's ResNet on the same 5-point chips: face_recognition through dlib
(HOG with one level of upsampling, 1 jitter), facegate's default pipeline on ONNX
Runtime (HOG, upsampling only where nothing is found, flip TTA: two network passes).
The passes alternate so the machine's noise falls on both.

Needs face_recognition in the same environment, without its dependencies (they are
facegate's already): ``.venv/bin/pip install --no-deps face_recognition``.

    .venv/bin/python bench/vs_face_recognition.py [--images 500] [--door 50]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


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


def one_process(encode, paths: list[str]) -> tuple[float, float, int]:
    """(CPU s, wall s, faces) for every path, one at a time in this process."""
    encode(paths[0])  # models loaded outside the timing
    cpu, wall = time.process_time(), time.perf_counter()
    faces = sum(encode(p) for p in paths)
    return time.process_time() - cpu, time.perf_counter() - wall, faces


def two_processes(encode, paths: list[str]) -> float:
    """Wall seconds for every path over 2 worker processes (models loaded first)."""
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(encode, paths[:2]))
        start = time.perf_counter()
        list(pool.map(encode, paths, chunksize=8))
        return time.perf_counter() - start


def door_latencies(fr, gallery_paths: list[str], probe: str, repeats: int) -> dict[str, np.ndarray]:
    """ms per door check (decode, detect, embed, match against a 100-person gallery), warm."""
    import facegate

    known = [e for p in gallery_paths for e in fr.face_encodings(fr.load_image_file(p))[:1]]
    with facegate.Gallery(":memory:") as gallery:
        vectors = facegate.represent_many(gallery_paths, workers=1)
        gallery.add_embeddings_bulk(
            {f"p{i}": v[0].embedding[None] for i, v in enumerate(vectors) if isinstance(v, list)}
        )
        name = next(iter(gallery.people())).name
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--door", type=int, default=50, help="door checks timed per system")
    args = parser.parse_args()
    fr = import_face_recognition()
    everything = sorted(str(p) for p in (args.lfw / "images").glob("*/*.jpg"))
    paths = everything[: args.images]

    rows = []
    fr_cpu, fr_wall, fr_faces = one_process(fr_encode, paths)
    fg_cpu, fg_wall, fg_faces = one_process(fg_encode, paths)
    fr_two, fg_two = two_processes(fr_encode, paths), two_processes(fg_encode, paths)
    n = len(paths)
    for name, cpu, wall, two, faces in (
        ("face_recognition (HOG, upsample 1, 1 jitter)", fr_cpu, fr_wall, fr_two, fr_faces),
        ("facegate default (HOG, flip TTA, ONNX)", fg_cpu, fg_wall, fg_two, fg_faces),
    ):
        rows.append(f"| {name} | {1000 * cpu / n:.1f} | {n / wall:.1f} | {n / two:.1f} | {faces} |")
    print(f"\n## {n} LFW images, detect + align + embed\n")
    print("| system | CPU ms/image (1 process) | images/s, 1 process | images/s, 2 processes | faces embedded |")
    # face_recognition embeds every face of a photo, facegate the largest: per image, not per face
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        f"\nfacegate / face_recognition: CPU per image {fr_cpu / fg_cpu:.2f}x less; images/s "
        f"{(n / fg_wall) / (n / fr_wall):.2f}x (1 process), {fr_two / fg_two:.2f}x (2 processes)"
    )

    latencies = door_latencies(fr, everything[-100:], everything[-101], args.door)
    print(f"\n## door check, one photo against 100 people, warm ({args.door} checks)\n")
    print("| system | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, ms in latencies.items():
        print(f"| {name} | {np.median(ms):.1f} | {np.percentile(ms, 95):.1f} |")


if __name__ == "__main__":
    main()
