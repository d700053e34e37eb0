"""How the inverted file's candidates vary with its training, and how many codes' best candidates
(the pool, ranked again on the float vectors) hold the best person.

The in-process index (``facegate/gallery/ivf.py``) trains k-means and its codes on a seeded draw
of the templates in the order it is given them, so two galleries of the same templates stored in
another order (a copy into PostgreSQL, say) get different lists, and a recall measured on one
training is one draw. This bench takes ``bench/gallery_scale.py``'s gallery of ``--size``
templates and its index as the gallery keeps it, builds ``--trainings`` more from the same
templates in other seeded orders, and for each pool in ``--pools`` reports how often exact
search's best person (every person scored) owns one of the 64 templates a search returns (the
gallery scores those owners exactly: a person missing here is a miss), on the tuning probes and
on the reported ones, and the median time of the index search and of a whole identification
(``identify_embedding``, top 10; the kept index, pools alternating, four rounds).
``--scores normalised`` (the default scores: templates with their owner's penalty, probes of test
people only) or ``plain``.

    .venv/bin/python bench/ivf_trainings.py --scores normalised --trainings 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, exact_best, gallery_path, probes

K = 64  # the templates a search asks for (ann.candidate_count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--scores", choices=("plain", "normalised"), default="normalised")
    ap.add_argument("--trainings", type=int, default=6, help="indexes built in other orders, beside the kept one")
    ap.add_argument("--pools", default="256,320,384,448,512")
    ap.add_argument("--share", type=float, default=None, help="the share of lists scanned (default: the index's)")
    ap.add_argument("--probes", type=int, default=200)
    args = ap.parse_args()
    import facegate.gallery.ivf as ivf
    from facegate.gallery import Gallery

    normalise = args.scores == "normalised"
    pools = [int(p) for p in args.pools.split(",")]
    tuning, reported = (probes(args.probes, tuning=t, test_only=normalise)[0].astype(np.float32) for t in (True, False))
    best = exact_best(args.size, np.r_[tuning, reported], normalise)  # one exact gallery for both sets
    sets = {"tuning": (tuning, best[: len(tuning)]), "reported": (reported, best[len(tuning) :])}
    g = Gallery(gallery_path(args.size), index="ivf", normalise=normalise)
    ann = g.ann
    person_of = {n: p for p, n in g._names.items()}
    ids, owners, matrix, _ = g.store.load_templates()
    order = np.argsort(ids, kind="stable")
    ids, owners = ids[order], owners[order]
    unit = ann._normalised(matrix[order])
    prepared = {name: [ann._prepare(q)[0] for q in queries] for name, (queries, _) in sets.items()}
    indexes = {"kept": ann.graph}
    for seed in range(args.trainings):
        shuffled = np.random.default_rng(100 + seed).permutation(len(ids))
        index = ivf.IvfIndex(ann.graph_dim, capacity=len(ids) + 1024, tail=ann.graph.tail)
        index.add(ids[shuffled], ann._penalised(ann._projected(unit[shuffled]), owners[shuffled]), threads=2)
        indexes[f"order {seed}"] = index
    rows = []
    for name, index in indexes.items():
        for pool in pools:
            ivf.POOL = ivf.TAIL_POOL = pool
            row = {"index": name, "pool": pool}
            for set_name, (_, best) in sets.items():
                found = [
                    person_of[b] in set(ann._owner_of[index.search(q, K, args.share)].tolist())
                    for q, b in zip(prepared[set_name], best, strict=True)
                ]
                row[set_name] = round(float(np.mean(found)), 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    times: dict[int, list[float]] = {p: [] for p in pools}
    whole: dict[int, list[float]] = {p: [] for p in pools}
    queries = sets["reported"][0]
    for round_ in range(4):
        for pool in pools if round_ % 2 == 0 else pools[::-1]:
            ivf.POOL = ivf.TAIL_POOL = pool
            for q in prepared["reported"][:20]:  # warm-up
                ann.graph.search(q, K, args.share)
            for q, raw in zip(prepared["reported"], queries, strict=True):
                start = time.perf_counter()
                ann.graph.search(q, K, args.share)
                times[pool].append(time.perf_counter() - start)
                if args.share is None:  # the gallery's own search: a whole identification
                    start = time.perf_counter()
                    g.identify_embedding(raw, top_k=10)
                    whole[pool].append(time.perf_counter() - start)
    g.close()
    summary = []
    for pool in pools:
        mine = [r for r in rows if r["pool"] == pool]
        line = {"pool": pool, "search_p50_ms": round(float(np.median(times[pool])) * 1000, 3)}
        line["identify_p50_ms"] = round(float(np.median(whole[pool])) * 1000, 3) if whole[pool] else None
        for set_name in sets:
            values = [r[set_name] for r in mine]
            line[f"{set_name}_mean"] = round(float(np.mean(values)), 4)
            line[f"{set_name}_min"] = round(float(np.min(values)), 4)
        summary.append(line)
    out = {"size": args.size, "scores": args.scores, "share": args.share, "indexes": len(indexes), "rows": rows}
    out["summary"] = summary
    share = "" if args.share is None else f"_share{args.share:g}"
    (OUT / f"ivf_trainings_{args.size}_{args.scores}{share}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{len(indexes)} indexes ({args.scores} scores, {args.size} templates); best person among the candidates:")
    print("| pool | tuning: mean / lowest | reported: mean / lowest | index search p50 ms | identify p50 ms |")
    print("|---:|---:|---:|---:|---:|")
    for s in summary:
        tuning = f"{s['tuning_mean']:.4f} / {s['tuning_min']:.4f}"
        reported = f"{s['reported_mean']:.4f} / {s['reported_min']:.4f}"
        print(f"| {s['pool']} | {tuning} | {reported} | {s['search_p50_ms']} | {s['identify_p50_ms'] or '-'} |")


if __name__ == "__main__":
    main()
