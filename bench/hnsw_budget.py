"""What recall an HNSW graph can give within pgvector's 10 ms at 1M templates: its distance
evaluations counted, and what each costs in pgvector.

pgvector's HNSW search spends its time per distance evaluation (each a visit to the neighbour's
tuple in the shared buffers), so its latency is about ``a + b * evaluations``. This bench counts the
evaluations on faiss's HNSW, the same algorithm with the same parameters (``M`` neighbours on the
upper layers and ``2M`` on the bottom one, ``efConstruction``, ``efSearch``), built on
``bench/gallery_scale.py``'s 1M gallery in the seeded random order of ``pgvector_ab.py
--order shuffled``, for each ``--configs`` ``M/efConstruction``, and its recall@1 on ``gallery_scale``'s
real probes (plain distances: the owner of the nearest template found is exact search's best
person), the search list ``ef`` chosen on the tuning probes and reported on the others.

Where ``bench/out/pgvector_ab_1000000_m{M}_efc{efc}_shuffled_huge.json`` exists for a graph,
pgvector's measured identify p50 is put beside the evaluations of the same graph and ``ef``, and a
line fitted through all such points gives ``a`` and ``b``: from them, each graph's time for a
recall of 0.99. faiss builds its own graph, not pgvector's, and a graph built twice differs, so
the recalls beside each other are close, not equal.

    .venv/bin/python bench/hnsw_budget.py --configs 16/64,32/128,24/256,48/200   # about 45 min of builds

Each graph's rows are kept in ``bench/out/hnsw_budget.json``: a later run measures the graphs it is
given and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, gallery_path, probes

N = 1_000_000
EF_VALUES = (64, 100, 150, 200, 300, 400, 600, 800)
K = 64  # the candidates the gallery asks for (ann.candidate_count)
RECALL = 0.99
BUDGET_MS = 10.0
RESULTS = OUT / "hnsw_budget.json"


def exact_owners(owners: np.ndarray, matrix: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The owner of each query's nearest template, every template compared."""
    norms = np.einsum("ij,ij->i", matrix, matrix)
    return np.concatenate(
        [owners[np.argmin(norms[None] - 2 * block @ matrix.T, axis=1)] for block in np.array_split(queries, 8)]
    )


def measure(m: int, efc: int, data: tuple, probe_sets: dict) -> list[dict]:
    import faiss

    owners, matrix = data
    index = faiss.IndexHNSWFlat(matrix.shape[1], m)
    index.hnsw.efConstruction = efc
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    index.add(matrix)
    build_s = round(time.perf_counter() - start)
    faiss.omp_set_num_threads(1)  # one search at a time, as one pgvector backend searches
    rows = []
    for ef in EF_VALUES:
        index.hnsw.efSearch = ef
        row = {"m": m, "ef_construction": efc, "build_s": build_s, "ef_search": ef}
        for name, (queries, truth) in probe_sets.items():
            faiss.cvar.hnsw_stats.reset()
            start = time.perf_counter()
            _, found = index.search(queries, K)
            row[f"{name}_ms"] = round((time.perf_counter() - start) / len(queries) * 1000, 3)
            row[f"{name}_evaluations"] = round(faiss.cvar.hnsw_stats.ndis / len(queries))
            row[f"{name}_recall"] = round(float(np.mean(owners[found[:, 0]] == truth)), 4)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def pgvector_points(rows: list[dict]) -> list[dict]:
    """pgvector's measured p50 beside the evaluations of the same graph and search list."""
    points = []
    for m, efc in sorted({(r["m"], r["ef_construction"]) for r in rows}):
        path = OUT / f"pgvector_ab_{N}_m{m}_efc{efc}_shuffled_huge.json"
        if not path.exists():
            continue
        measured = json.loads(path.read_text())
        for r in measured["rows"]:
            if not r["search"].startswith("PostgreSQL, pgvector ef_search"):
                continue
            ef = int(r["search"].rsplit(" ", 1)[1])
            mine = [x for x in rows if (x["m"], x["ef_construction"], x["ef_search"]) == (m, efc, ef)]
            if mine:
                points.append(
                    {
                        "m": m,
                        "ef_construction": efc,
                        "ef_search": ef,
                        "evaluations": mine[0]["reported_evaluations"],
                        "pgvector_p50_ms": r["identify_p50_ms"],
                        "pgvector_same_best": r["same_best_as_exact"],
                        "faiss_recall": mine[0]["reported_recall"],
                    }
                )
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="16/64,32/128,24/256,48/200", help="M/efConstruction, comma-separated")
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers, in each set")
    args = ap.parse_args()
    from facegate.gallery import Gallery

    with Gallery(gallery_path(N), index="exact", normalise=False) as g:
        _, owners, matrix, _ = g.store.load_templates()
    order = np.random.default_rng(0).permutation(len(owners))  # pgvector_ab.py --order shuffled's order
    owners, matrix = owners[order], np.ascontiguousarray(matrix[order], np.float32)
    probe_sets = {}
    for name, tuning in (("tuning", True), ("reported", False)):
        queries = probes(args.probes, tuning=tuning)[0].astype(np.float32)
        probe_sets[name] = (queries, exact_owners(owners, matrix, queries))
    kept = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    for config in args.configs.split(","):
        m, efc = (int(x) for x in config.split("/"))
        kept = [r for r in kept if (r["m"], r["ef_construction"]) != (m, efc)] + measure(
            m, efc, (owners, matrix), probe_sets
        )
    points = pgvector_points(kept)
    fit = None
    if len(points) >= 2:
        b, a = np.polyfit([p["evaluations"] for p in points], [p["pgvector_p50_ms"] for p in points], 1)
        fit = {"fixed_ms": round(float(a), 3), "per_evaluation_us": round(float(b) * 1000, 3)}
        fit["evaluations_in_budget"] = round((BUDGET_MS - a) / b)
    summary = []
    for m, efc in sorted({(r["m"], r["ef_construction"]) for r in kept}):
        rows = sorted((r for r in kept if (r["m"], r["ef_construction"]) == (m, efc)), key=lambda r: r["ef_search"])
        enough = [r for r in rows if r["tuning_recall"] >= RECALL]
        chosen = enough[0] if enough else rows[-1]
        line = {
            "m": m,
            "ef_construction": efc,
            "build_s": chosen["build_s"],
            "ef_search": chosen["ef_search"],
            "reached_on_tuning": bool(enough),
            "evaluations": chosen["reported_evaluations"],
            "reported_recall": chosen["reported_recall"],
        }
        if fit:
            line["pgvector_ms_predicted"] = round(
                fit["fixed_ms"] + fit["per_evaluation_us"] / 1000 * line["evaluations"], 1
            )
            within = [r for r in rows if r["reported_evaluations"] <= fit["evaluations_in_budget"]]
            line["recall_within_budget"] = within[-1]["reported_recall"] if within else None
        summary.append(line)
    RESULTS.write_text(json.dumps({"rows": kept, "pgvector": points, "fit": fit, "summary": summary}, indent=1) + "\n")

    graph = "M / efConstruction"
    table(
        [graph, "ef_search", "evaluations", "recall@1 (tuning / reported)", "in-process ms"],
        [
            [
                f"{r['m']} / {r['ef_construction']}",
                r["ef_search"],
                r["reported_evaluations"],
                f"{r['tuning_recall']:.3f} / {r['reported_recall']:.3f}",
                r["reported_ms"],
            ]
            for r in kept
        ],
    )
    if points:
        table(
            [graph, "ef_search", "evaluations", "pgvector p50 ms", "same best (pgvector / faiss)"],
            [
                [
                    f"{p['m']} / {p['ef_construction']}",
                    p["ef_search"],
                    p["evaluations"],
                    p["pgvector_p50_ms"],
                    f"{p['pgvector_same_best']:.3f} / {p['faiss_recall']:.3f}",
                ]
                for p in points
            ],
        )
    if fit:
        print(
            f"\npgvector identify p50 = {fit['fixed_ms']} ms + {fit['per_evaluation_us']} µs per evaluation: "
            f"{BUDGET_MS:g} ms buys {fit['evaluations_in_budget']} evaluations"
        )
    header = [graph, "build s", f"ef_search for {RECALL} (tuning)", "evaluations", "recall@1 reported"]
    body = []
    for s in summary:
        ef = f"{s['ef_search']}" + ("" if s["reached_on_tuning"] else " (not reached)")
        row = [f"{s['m']} / {s['ef_construction']}", s["build_s"], ef, s["evaluations"], f"{s['reported_recall']:.3f}"]
        if fit:
            within = s["recall_within_budget"]
            row += [s["pgvector_ms_predicted"], "-" if within is None else f"{within:.3f}"]
        body.append(row)
    if fit:
        header += ["pgvector ms, predicted", f"recall@1 within {BUDGET_MS:g} ms"]
    table(header, body)


def table(header: list[str], rows: list[list]) -> None:
    print("\n| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
