"""pgvector's HNSW on the full templates against one on their principal axes in half precision.

The in-process graph indexes each template's coordinates on the gallery's principal axes
(``gallery/projection.py``: 80 numbers for the default model, against 128). This bench asks
whether the same would speed up search in PostgreSQL: one table of ``n`` templates
(``pgvector_scale.py``'s: LFW's real templates and synthetic people, loaded by binary COPY through
facegate's store), with two HNSW indexes (same ``m`` and ``ef_construction``):

- ``vector(128)``: the store's index on ``embedding`` (``vector_l2_ops``);
- ``halfvec(80)``: on a column ``axes`` holding each template's coordinates on the principal axes
  that keep all but 0.01% of the variance, in 16-bit floats (``halfvec_l2_ops``).

Each ``ef_search`` runs every held-out query on both, alternating which goes first; reported per
index: p50 / p95 ms of ``ORDER BY ... LIMIT 100`` (the templates a top-10 identification asks for),
how often the exact nearest template (full templates, float64) is among the 100, the build time and
the index size.

    .venv/bin/python bench/pgvector_axes.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgvector_scale import DIM, MODEL, SERVER, _copy_people, _copy_templates, exact_neighbours, held_out

from facegate.gallery.pg_embedded import temporary_server
from facegate.gallery.projection import Projection
from facegate.gallery.store_postgres import HNSW_EF_CONSTRUCTION, HNSW_M, PostgresStore

OUT = Path(__file__).resolve().parent / "out"
ASKED = 100  # templates a top-10 identification asks for (ann.candidate_count(10))


def text_vectors(matrix: np.ndarray) -> list[str]:
    return ["[" + ",".join(f"{x:.6g}" for x in row) + "]" for row in matrix]


def run(url: str, n: int, n_queries: int, ef_values: list[int], m: int, efc: int) -> dict:
    import psycopg

    queries, owners, matrix = held_out(n, n_queries, 0, np.random.default_rng(1))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS axes_{n}")
        admin.execute(f"CREATE DATABASE axes_{n}")
    store = PostgresStore(url.replace("/postgres?", f"/axes_{n}?"), MODEL, DIM)
    conn = store._conn
    conn.execute("DROP INDEX templates_embedding_hnsw")
    with conn.transaction():
        _copy_people(conn, int(owners.max()) + 1)
        _copy_templates(conn, owners, matrix)
    projection = Projection.fit(matrix)
    axes = projection(matrix)
    conn.execute(f"ALTER TABLE templates ADD COLUMN axes halfvec({projection.dim})")
    conn.execute(f"CREATE TEMPORARY TABLE template_axes (id bigint, axes halfvec({projection.dim}))")
    with conn.cursor().copy("COPY template_axes (id, axes) FROM STDIN") as copy:
        for i, text in enumerate(text_vectors(axes)):
            copy.write_row((i + 1, text))
    conn.execute("UPDATE templates t SET axes = a.axes FROM template_axes a WHERE a.id = t.id")
    conn.execute("VACUUM ANALYZE templates")
    conn.execute(f"SET maintenance_work_mem = '{SERVER['maintenance_work_mem']}'")
    out: dict = {"templates": n, "queries": n_queries, "m": m, "ef_construction": efc, "axes": projection.dim}
    indexes = {
        "vector(128)": ("embedding", "vector_l2_ops", lambda q: "[" + ",".join(f"{x:.9g}" for x in q) + "]"),
        f"halfvec({projection.dim})": ("axes", "halfvec_l2_ops", lambda q: text_vectors(projection(q))[0]),
    }
    for name, (column, ops, _) in indexes.items():
        start = time.perf_counter()
        conn.execute(
            f"CREATE INDEX ix_{column} ON templates USING hnsw ({column} {ops}) WITH (m = {m}, ef_construction = {efc})"
        )
        out[f"{name} build_s"] = round(time.perf_counter() - start, 1)
        out[f"{name} index_mb"] = round(conn.execute(f"SELECT pg_relation_size('ix_{column}')").fetchone()[0] / 2**20)
        print(name, out[f"{name} build_s"], "s", out[f"{name} index_mb"], "MB", flush=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    conn.execute("SELECT pg_prewarm('ix_embedding'), pg_prewarm('ix_axes'), pg_prewarm('templates')")
    nearest = exact_neighbours(matrix, queries, 1)[:, 0] + 1  # template ids are rows + 1
    cast = {"embedding": "vector", "axes": "halfvec"}
    out["rows"] = []
    for ef in ef_values:
        conn.execute(f"SET hnsw.ef_search = {int(ef)}")
        times: dict[str, list[float]] = {name: [] for name in indexes}
        found: dict[str, list[bool]] = {name: [] for name in indexes}
        texts = {name: [fmt(q) for q in queries] for name, (_, _, fmt) in indexes.items()}
        for i, best in enumerate(nearest):
            for name in sorted(indexes, reverse=bool(i % 2)):
                column = indexes[name][0]
                sql = f"SELECT id FROM templates ORDER BY {column} <-> %s::{cast[column]} LIMIT {ASKED}"
                t = time.perf_counter()
                ids = [r[0] for r in conn.execute(sql, (texts[name][i],)).fetchall()]
                times[name].append(time.perf_counter() - t)
                found[name].append(int(best) in ids)
        for name in indexes:
            ms = np.array(times[name]) * 1000
            row = {"ef_search": ef, "index": name, "p50_ms": round(float(np.median(ms)), 3)}
            row |= {"p95_ms": round(float(np.percentile(ms, 95)), 3), "nearest_found": float(np.mean(found[name]))}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    store.close()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE axes_{n}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--ef-search", default="100,200,400")
    ap.add_argument("--m", type=int, default=HNSW_M)
    ap.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION)
    args = ap.parse_args()
    efs = [int(e) for e in args.ef_search.split(",")]
    with temporary_server(None, SERVER) as url:
        out = run(url, args.n, args.queries, efs, args.m, args.ef_construction)
    OUT.mkdir(exist_ok=True)
    (OUT / f"pgvector_axes_{args.n}.json").write_text(json.dumps(out, indent=1))
    print({k: v for k, v in out.items() if k != "rows"})
    print("\n| ef_search | index | p50 ms | p95 ms | nearest template among the 100 |")
    print("|---:|---|---:|---:|---:|")
    for r in out["rows"]:
        print(f"| {r['ef_search']} | {r['index']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['nearest_found']:.3f} |")


if __name__ == "__main__":
    main()
