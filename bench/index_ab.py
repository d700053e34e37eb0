"""The whole identification with each in-process index, in one process: which is faster end to end?

``bench/ann_frontier.py`` times the indexes' searches alone; this bench times what a caller waits
for, ``Gallery.identify_embedding`` (candidates, exact fused distances, ranking; top 10, plain
distances), on the same gallery (``bench/gallery_scale.py``'s ``gallery_<n>.sqlite``) with:

- ``ivf``: the gallery's default index (``gallery/ivf.py``), as the gallery searches (its list
  scan on two threads from ``SPLIT_FROM`` templates scanned on: at 1M, not at 100k);
- ``ivf, 1 thread``: the same index with its list scan always on one thread;
- ``hnsw``: hnswlib's graph (``index="hnsw"``), kept for the benches as
  ``gallery_<n>.sqlite.hnsw.ann.*`` (loaded, or built: 10 minutes at 1M).

Each arm answers all the reported probes in a block (a server answers one query after another
with one index), then asks its index alone for the same probes; the blocks run twice, the second
time in the reverse order. Reported: p50 / p95 ms of both, and how often the best person is exact
search's (plain distances, every template scored).

    .venv/bin/python bench/index_ab.py --n 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, gallery_path, kept_graph, ms, probes


def compare(n: int, n_probes: int) -> dict:
    from facegate.gallery import Gallery, ivf
    from facegate.gallery.ann import candidate_count

    g = Gallery(gallery_path(n), index="ivf", normalise=False)
    assert g.search_kind == "ann"  # opens the index
    ids, owners, matrix, _ = g.store.load_templates()
    graph, opened = kept_graph(n, g, ids, owners, matrix)
    out: dict = {"templates": n, **opened}
    arms = {"ivf": (g._ann, ivf.SEARCH_THREADS), "ivf, 1 thread": (g._ann, 1), "hnsw": (graph, ivf.SEARCH_THREADS)}
    queries = probes(n_probes)[0].astype(np.float32)
    index = g._index
    exact = [index.people[np.argmin(index.person_distances(q))] for q in queries]
    whole: dict[str, list[float]] = {a: [] for a in arms}
    alone: dict[str, list[float]] = {a: [] for a in arms}
    same: dict[str, list[bool]] = {a: [] for a in arms}
    keep = ivf.SEARCH_THREADS
    try:
        for round_ in (0, 1):
            for name in list(arms) if round_ == 0 else list(arms)[::-1]:
                g._ann, ivf.SEARCH_THREADS = arms[name]
                g.identify_embedding(queries[0], top_k=10)
                for q, best in zip(queries, exact, strict=True):
                    t = time.perf_counter()
                    result = g.identify_embedding(q, top_k=10)
                    whole[name].append(time.perf_counter() - t)
                    if round_ == 0:
                        same[name].append(result.candidates[0].name == index.names[best])
                for q in queries:
                    t = time.perf_counter()
                    g._ann.nearest(q, candidate_count(10))
                    alone[name].append(time.perf_counter() - t)
    finally:
        g._ann, ivf.SEARCH_THREADS = arms["ivf"][0], keep
    out["rows"] = [
        {
            "index": name,
            "identify_p50_ms": ms(whole[name])[0],
            "identify_p95_ms": ms(whole[name])[1],
            "index_p50_ms": ms(alone[name])[0],
            "index_p95_ms": ms(alone[name])[1],
            "same_best_as_exact": float(np.mean(same[name])),
        }
        for name in arms
    ]
    g.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers")
    args = ap.parse_args()
    out = compare(args.n, args.probes)
    (OUT / f"index_ab_{args.n}.json").write_text(json.dumps(out, indent=1))
    print(f"<!-- graph {out['graph']} in {out['graph_open_s']} s -->")
    print("| index | identify p50 / p95 ms | index alone p50 / p95 ms | best person = exact search's |")
    print("|---|---:|---:|---:|")
    for r in out["rows"]:
        print(
            f"| {r['index']} | {r['identify_p50_ms']} / {r['identify_p95_ms']} "
            f"| {r['index_p50_ms']} / {r['index_p95_ms']} | {r['same_best_as_exact']:.3f} |"
        )


if __name__ == "__main__":
    main()
