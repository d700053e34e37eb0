"""What a large gallery can honestly do with the default model (dlib-resnet, hog+cnn, TTA).

1. Open-set identification at 10k, 100k and 1M templates (the galleries of
   ``bench/gallery_scale.py``: LFW people enrolled from one photo among synthetic
   people with LFW's distance distribution). The gallery's size-aware threshold for
   the default target (FPIR 1%: one stranger in a hundred named as someone) comes
   from the decisions package; it is applied to real probes:

   - mated: every other photo of the enrolled LFW test people (``pairsDevTest.txt``'s:
     the cohort the default scores normalise against is the training people). FNIR =
     share not named as themselves (missed: "unknown"; or named as someone else);
   - strangers: every photo of the LFW test people not enrolled. FPIR = share named
     as someone.

   Also reported: how often the right person is not even the best candidate (rank-1
   miss), with the default scores and with plain distances (closest template; exact,
   up to 100k), since the synthetic distractors match LFW's distances but their
   cohort statistics are the generator's.

   The gallery searches as it would in use (``index="auto"``: the graph from 20k
   templates on) with the default scores (cohort-normalised).

2. Searching a photo archive: every LFW photo is in the archive, among synthetic
   photos up to 10k, 100k and 1M; each photo of a person with 2+ photos is a query.
   Reported: the share of the person's other photos in the top 10 (recall@10), and
   the share of queries with at least one of them in the top 10 (hit@10). Exact
   search (no graph), so the figures are the model's, not the index's.

    .venv/bin/python bench/large_gallery.py [--sizes 10000,100000,1000000] [--archive-queries 400]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embeddings_synth import real_faces, synthetic_gallery
from gallery_scale import OUT, build_gallery, lfw_split


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def open_set(n: int) -> dict:
    from facegate.gallery import Gallery

    path = build_gallery(n)
    real = real_faces()
    split = lfw_split(test_only=True)
    with Gallery(path) as g:
        point = g.identification_point
        start = time.perf_counter()
        mated = [g.identify_embedding(real.vectors[i], top_k=1) for i in split["mated"]]
        strangers = [g.identify_embedding(real.vectors[i], top_k=1) for i in split["strangers"]]
        per_probe = (time.perf_counter() - start) / (len(mated) + len(strangers))
        truth = [f"lfw{int(real.labels[i])}" for i in split["mated"]]
        named_right = sum(r.identity == t for r, t in zip(mated, truth, strict=True))
        missed = sum(r.identity is None for r in mated)
        wrong = len(mated) - named_right - missed
        # FNIR at rank 1 without a threshold: how often the right person is not even the best candidate
        not_first = sum(r.candidates[0].name != t for r, t in zip(mated, truth, strict=True))
        false_pos = sum(r.identity is not None for r in strangers)
        plain = None
        if n <= 100_000:  # the same question with plain distances (closest template), exactly
            _, owners, matrix, names = g.store.load_templates()
            sq = (matrix**2).sum(1)
            best = [names[int(owners[np.argmin(sq - 2 * matrix @ real.vectors[i])])] for i in split["mated"]]
            plain = sum(b != t for b, t in zip(best, truth, strict=True)) / len(truth)
        return {
            "templates": n,
            "people": len(g),
            "search": g.search_kind,
            "threshold_score": round(point.threshold, 4),
            "threshold_source": point.source,
            "target_reachable": point.reachable,
            "effective_comparisons": round(point.comparisons, 1),
            "expected_fpir": point.expected_rate,
            "median_distance_limit": round(float(np.median([r.threshold for r in mated + strangers])), 4),
            "target_fpir": point.target,
            "fpir": false_pos / len(strangers),
            "fnir": (len(mated) - named_right) / len(mated),
            "fnir_missed": missed / len(mated),
            "fnir_wrong_person": wrong / len(mated),
            "rank1_miss": not_first / len(mated),
            "rank1_miss_plain_distance": plain,
            "mated": len(mated),
            "strangers": len(strangers),
            "ms_per_probe": round(per_probe * 1000, 2),
        }


def archive(n: int, n_queries: int) -> dict:
    """Recall@10 and hit@10 of a person's other photos, exact search over ``n`` photos."""
    real = real_faces()
    _, synth = synthetic_gallery(max(n - len(real.labels), 0), seed=n + 1, include_real=False)
    matrix = np.concatenate([real.vectors, synth]).astype(np.float32)
    labels = np.r_[real.labels, np.full(len(synth), -1)]
    counts = np.bincount(real.labels)
    candidates = np.flatnonzero(counts[real.labels] >= 2)
    queries = np.random.default_rng(0).choice(candidates, min(n_queries, len(candidates)), replace=False)
    sq = (matrix**2).sum(1)
    recalls, hits = [], []
    for start in range(0, len(queries), 64):
        qs = queries[start : start + 64]
        d = sq[None, :] - 2 * real.vectors[qs] @ matrix.T
        d[np.arange(len(qs)), qs] = np.inf  # the query photo itself is not an answer
        top = np.argpartition(d, 10, axis=1)[:, :10]
        for q, row in zip(qs, top, strict=True):
            mine = labels[row] == real.labels[q]
            recalls.append(mine.sum() / min(counts[real.labels[q]] - 1, 10))
            hits.append(bool(mine.any()))
    return {
        "photos": len(matrix),
        "queries": len(queries),
        "recall@10": round(float(np.mean(recalls)), 4),
        "hit@10": round(float(np.mean(hits)), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--archive-queries", type=int, default=400)
    ap.add_argument("--skip-open-set", action="store_true")
    ap.add_argument("--out", default="large_gallery.json", help="results file under bench/out")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    result: dict = {"open_set": [], "archive": []}
    if not args.skip_open_set:
        for n in sizes:
            row = open_set(n)
            result["open_set"].append(row)
            print(json.dumps(row), flush=True)
    for n in sizes:
        row = archive(n, args.archive_queries)
        result["archive"].append(row)
        print(json.dumps(row), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / args.out).write_text(json.dumps(result, indent=1))
    if result["open_set"]:
        print("\n| templates | people | search | threshold (score) | median distance limit | FPIR (target 1%) "
              "| FNIR | missed | wrong person | rank-1 miss | rank-1 miss, plain distance |")  # fmt: skip
        print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in result["open_set"]:
            print(
                f"| {r['templates']:,} | {r['people']:,} | {r['search']} | {r['threshold_score']} | "
                f"{r['median_distance_limit']} | {pct(r['fpir'])} | {pct(r['fnir'])} | {pct(r['fnir_missed'])} | "
                f"{pct(r['fnir_wrong_person'])} | {pct(r['rank1_miss'])} | "
                f"{'-' if r['rank1_miss_plain_distance'] is None else pct(r['rank1_miss_plain_distance'])} |"
            )
        r = result["open_set"][0]
        print(f"\n{r['mated']} mated probes, {r['strangers']} stranger probes (LFW View 1 photos)")
    print("\n| photos in the archive | queries | other photos in the top 10 (recall@10) | at least one (hit@10) |")
    print("|---:|---:|---:|---:|")
    for r in result["archive"]:
        print(f"| {r['photos']:,} | {r['queries']} | {pct(r['recall@10'])} | {pct(r['hit@10'])} |")


if __name__ == "__main__":
    main()
