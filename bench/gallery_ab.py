"""Two checkouts of facegate side by side: the same gallery searched by each, in alternating processes.

The machine is shared and its speed drifts between runs (the same exact search took 0.45 ms
one day and 0.72 ms the next), so a change to the search is judged against the code before
it in one run: each round starts one process per checkout (``PYTHONPATH`` points at its
``src``), which opens ``bench/gallery_scale.py``'s gallery of ``--size`` templates with the
index, and times ``identify_embedding`` on the reported probes (top 10; plain distances, or with
``--scores normalised`` the default cohort-normalised scores):

- ``whole``: the whole identification, the index's search included;
- ``outside``: the same with the index's answers replayed from memory (each probe's
  answer recorded first), so only the work around the index is timed;
- ``open, s`` and ``remove one, s`` (from the ``whole`` processes): opening the gallery, its index
  loaded from its files, and removing a person enrolled for the purpose (2 templates) after the
  timed passes.

Each process reports the median of 3 passes over the probes; the table gives every
round and the median of the per-round ratios.

    git worktree add /tmp/facegate-before <commit>
    .venv/bin/python bench/gallery_ab.py --before /tmp/facegate-before/src --size 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
AFTER = HERE.parent / "src"


def child(size: int, probes_each: int, replay: bool, normalise: bool) -> dict:
    sys.path.insert(0, str(HERE))
    from gallery_scale import gallery_path, probes

    import facegate
    from facegate.gallery import Gallery

    start = time.perf_counter()
    g = Gallery(gallery_path(size), index="ann", normalise=normalise)
    opened = time.perf_counter() - start
    queries, _ = probes(probes_each)
    if replay:  # keyed on the probe as given: its projection's bits vary with memory alignment
        ann = g.ann
        answers = {np.asarray(q, np.float32).tobytes(): ann.nearest(q, 100) for q in queries}
        ann.nearest = lambda q, k, effort=None: answers[np.asarray(q, np.float32).tobytes()]
    g.identify_embedding(queries[0], top_k=10)
    passes = []
    for _ in range(3):
        times = []
        for q in queries:
            t = time.perf_counter()
            g.identify_embedding(q, top_k=10)
            times.append(time.perf_counter() - t)
        passes.append(float(np.median(times)) * 1000)
    removed = float("nan")
    if not replay:
        g.add_embeddings("bench newcomer", queries[:2])
        start = time.perf_counter()
        g.remove("bench newcomer")
        removed = time.perf_counter() - start
    g.close()
    return {
        "src": str(Path(facegate.__file__).parents[1]),
        "p50_ms": round(float(np.median(passes)), 3),
        "open_s": round(opened, 2),
        "remove_s": round(removed, 2),
    }


def run(src: str, size: int, probes_each: int, replay: bool, scores: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--size", str(size), "--probes", str(probes_each)]
    cmd += ["--scores", scores] + (["--replay"] if replay else [])
    env = {**os.environ, "PYTHONPATH": src, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"the run with {src} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    if Path(result["src"]).resolve() != Path(src).resolve():
        raise RuntimeError(f"{src} was not the code imported ({result['src']})")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="the src folder of the checkout to compare with (required)")
    ap.add_argument("--after", default=str(AFTER), help="the src folder of the changed checkout (this one)")
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scores", choices=("distance", "normalised"), default="distance")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replay", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.size, args.probes, args.replay, args.scores == "normalised")))
        return
    if not args.before:
        ap.error("--before is required: the src folder of the checkout to compare with")
    print(f"{args.size:,} templates, {args.scores} scores; p50 ms of identify_embedding (before / after)\n")
    print("| part | round | before | after | before / after |")
    print("|---|---:|---:|---:|---:|")
    rows: dict[str, list[tuple[float, float]]] = {"open, s": [], "remove one, s": []}
    for replay, part in ((False, "whole"), (True, "outside the index")):
        ratios = []
        for i in range(args.rounds):
            before = run(args.before, args.size, args.probes, replay, args.scores)
            after = run(args.after, args.size, args.probes, replay, args.scores)
            b, a = before["p50_ms"], after["p50_ms"]
            ratios.append(b / a)
            print(f"| {part} | {i + 1} | {b:.3f} | {a:.3f} | {b / a:.2f} |", flush=True)
            if not replay:
                rows["open, s"].append((before["open_s"], after["open_s"]))
                rows["remove one, s"].append((before["remove_s"], after["remove_s"]))
        print(f"| {part} | median | | | {float(np.median(ratios)):.2f} |", flush=True)
    for part, pairs in rows.items():
        for i, (b, a) in enumerate(pairs):
            print(f"| {part} | {i + 1} | {b:.2f} | {a:.2f} | {b / a:.2f} |")
        print(f"| {part} | median | | | {float(np.median([b / a for b, a in pairs])):.2f} |", flush=True)


if __name__ == "__main__":
    main()
