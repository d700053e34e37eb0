"""A whole identification through PostgreSQL + pgvector against the in-process index, on the same
gallery and probes, in one process.

``bench/pgvector_scale.py`` measures pgvector's search on galleries of its own, queried with held-out
synthetic templates. This bench asks the 1M target's question on the footing the in-process figures
stand on: ``bench/gallery_scale.py``'s ``gallery_<n>.sqlite`` (LFW people enrolled from one photo,
synthetic people up to ``n`` templates) and its real probes (the enrolled people's other photos,
and strangers), through ``Gallery.identify_embedding`` (candidates, exact fused distances, ranking;
top 10; plain distances, or with ``--scores normalised`` the gallery's default normalised scores and
``gallery_scale``'s probes for them, of test people only) with:

- ``SQLite, in-process ivf``: the SQLite gallery with its default in-process index (``gallery/ivf.py``);
- the same people and templates copied into PostgreSQL (binary COPY into facegate's own schema, same
  person ids and names, in the ``--order`` given, the HNSW index built after them; or with ``--order
  copy`` by ``facegate gallery copy``), searched
  - ``PostgreSQL, in-process ivf``: in this process (``index="ivf"``: the server's templates read
    when the gallery opens, the index built or loaded from this machine's cache; that time is reported);
  - ``PostgreSQL, pgvector ef_search E``: in SQL through pgvector's HNSW index (``index="ann"``;
    ``--m``, ``--ef-construction``: the store's are 16 and 64), for each ``--ef-search``.

The server runs from ``--folder`` (kept between runs: the copy and the index are made once for
each ``n``, ``m``, ``ef_construction`` and order) with ``pgvector_scale.SERVER``'s settings and, with
``--huge-pages``, ``huge_pages = on`` (the kernel must hold enough 2 MiB pages: as root,
``echo 1700 > /proc/sys/vm/nr_hugepages`` for 3 GB of shared buffers). Each arm answers every
reported probe in a block; the blocks run twice, the second time in the reverse order. Reported:
p50 / p95 ms, and how often the best person is exact search's (every template scored), for all
probes and for the mated ones and the strangers apart.

    .venv/bin/python bench/pgvector_ab.py --n 1000000 --ef-search 100,200 --huge-pages
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, exact_best, gallery_path, ms, probes
from pgvector_scale import DIM, MODEL, SERVER, bulk_load

FOLDER = OUT / "scale" / "pgvector"
#: each ``--order``'s mark in database and file names
SUFFIX = {"enrolled": "", "shuffled": "_shuffled", "locality": "_locality", "copy": "_copied"}


def _copy_people(conn, names: dict[int, str]) -> None:
    with conn.cursor().copy("COPY people (id, name, created_at) FROM STDIN") as copy:
        for person, name in sorted(names.items()):
            copy.write_row((person, name, "2026-01-01T00:00:00+00:00"))


def database(url: str, n: int, m: int, efc: int, sqlite, order: str = "enrolled") -> tuple[str, dict]:
    """The PostgreSQL copy of ``sqlite`` (a store) with its HNSW index: made once, then reused.

    ``order``, the order the templates are written in (pgvector builds its graph in the table's order):
    ``enrolled`` (the SQLite gallery's: the LFW people first, as one block), ``shuffled`` (a seeded
    random order), ``locality`` (``locality_order`` of the enrolled order, as a copy writes them, for
    other graphs than the store's), or ``copy``: made by ``facegate gallery copy`` (``copy_gallery``:
    written in ``locality_order``, the store's own index built after them; ``m`` and ``efc`` are the
    store's)."""
    import psycopg

    from facegate.gallery.backends import copy_gallery

    name = f"scale_{n}_m{m}_efc{efc}{SUFFIX[order]}"
    gallery_url = url.replace("/postgres?", f"/{name}?")
    done_key = "pgvector_ab_copied" if order == "copy" else "bench_complete"  # a copy copies the gallery's own
    with psycopg.connect(url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            with psycopg.connect(gallery_url) as db:
                done = db.execute("SELECT value FROM meta WHERE key = %s", (done_key,)).fetchone()
            if done:
                return gallery_url, json.loads(done[0])
            admin.execute(f"DROP DATABASE {name}")
        admin.execute(f"CREATE DATABASE {name}")
    if order == "copy":
        start = time.perf_counter()
        report = copy_gallery(sqlite.path, gallery_url)
        made = {"copy_s": round(time.perf_counter() - start, 1), "templates": report.templates}
        with psycopg.connect(gallery_url, autocommit=True) as conn:
            size = conn.execute("SELECT pg_relation_size('templates_embedding_hnsw')").fetchone()[0]
            made["index_mb"] = round(size / 2**20)
            conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (done_key, json.dumps(made)))
        return gallery_url, made
    _, owners, matrix, names = sqlite.load_templates()
    permutation = order_of(order, 0, matrix)
    made = fill(gallery_url, names, owners[permutation], matrix[permutation], m, efc)
    with psycopg.connect(gallery_url, autocommit=True) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('bench_complete', %s)", (json.dumps(made),))
    return gallery_url, made


def order_of(kind: str, seed: int, matrix: np.ndarray) -> np.ndarray:
    """The order ``kind`` writes the templates in: ``enrolled`` (as given), ``shuffled`` (a random order
    from ``seed``), ``locality`` (``locality_order`` of the given order, as a copy writes them) or
    ``locality_shuffled`` (``locality_order`` of the random order)."""
    from facegate.gallery.locality import locality_order

    if kind == "enrolled":
        return np.arange(len(matrix))
    if kind == "locality":
        return locality_order(matrix, seed=seed)
    shuffled = np.random.default_rng(seed).permutation(len(matrix))
    if kind == "shuffled":
        return shuffled
    return shuffled[locality_order(matrix[shuffled], seed=seed)]


def fill(gallery_url: str, names: dict[int, str], owners: np.ndarray, matrix: np.ndarray, m: int, efc: int) -> dict:
    """A new gallery's tables filled by binary COPY with these templates in this order (the same person
    ids), then its HNSW index built with the bench server's ``maintenance_work_mem``: the seconds each
    took and the index's size."""
    from facegate.gallery.store_postgres import PostgresStore

    store = PostgresStore(gallery_url, MODEL, DIM)
    try:
        conn = store._conn
        made = {"load_s": round(bulk_load(store, lambda c: _copy_people(c, names), owners - 1, matrix), 1)}
        start = time.perf_counter()
        conn.execute(f"SET maintenance_work_mem = '{SERVER['maintenance_work_mem']}'")
        conn.execute(
            "CREATE INDEX templates_embedding_hnsw ON templates USING hnsw (embedding vector_l2_ops) "
            f"WITH (m = {m}, ef_construction = {efc})"
        )
        made["build_s"] = round(time.perf_counter() - start, 1)
        size = conn.execute("SELECT pg_relation_size('templates_embedding_hnsw')").fetchone()[0]
        made["index_mb"] = round(size / 2**20)
        return made
    finally:
        store.close()


def compare(
    n: int,
    n_probes: int,
    ef_values: list[int],
    m: int,
    efc: int,
    huge: bool,
    folder: Path,
    order: str = "enrolled",
    normalise: bool = False,
) -> dict:
    import psycopg

    from facegate.gallery import Gallery
    from facegate.gallery.pg_embedded import temporary_server
    from facegate.gallery.store_postgres import HNSW_EF_CONSTRUCTION, HNSW_M, PgSearcher

    if order == "copy":  # the store's own index
        m, efc = HNSW_M, HNSW_EF_CONSTRUCTION
    queries, truth = probes(n_probes, test_only=normalise)
    queries = queries.astype(np.float32)
    mated = np.array([t is not None for t in truth])
    exact = exact_best(n, queries, normalise)
    local = Gallery(gallery_path(n), index="ivf", normalise=normalise)
    assert local.search_kind == "ann"
    index = local._index
    folder.mkdir(parents=True, exist_ok=True)
    settings = {**SERVER, "huge_pages": "on" if huge else "off"}
    with temporary_server(folder, settings, keep=True) as url:
        gallery_url, made = database(url, n, m, efc, local.store, order)
        with psycopg.connect(gallery_url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            db.execute("SELECT pg_prewarm('templates_embedding_hnsw'), pg_prewarm('templates')")
            server = server_facts(db)
        remote = Gallery(gallery_url, index="ann", normalise=normalise)
        assert remote.search_kind == "ann" and len(remote._index) == len(index)
        use_searcher(remote, PgSearcher)  # the store's index, also where bench/pgvector_shards.py added shards
        start = time.perf_counter()
        beside = Gallery(gallery_url, index="ivf", normalise=normalise)  # the server's templates, searched here
        assert beside.search_kind == "ann"
        server["in_process_open_s"] = round(time.perf_counter() - start, 1)
        server["in_process_index"] = beside.ann.origin  # built, or loaded from this machine's cache
        arms = {"SQLite, in-process ivf": (local, None), "PostgreSQL, in-process ivf": (beside, None)} | {
            f"PostgreSQL, pgvector ef_search {ef}": (remote, ef) for ef in ef_values
        }
        times, same = answer(arms, queries, exact)
        remote.close()
        beside.close()
    local.close()
    rows = [row(name, times[name], same[name], mated) for name in arms]
    hnsw = {"m": m, "ef_construction": efc, "order": order, **made}
    scores = "normalised" if normalise else "plain"
    head = {"templates": n, "probes": len(queries), "mated": int(mated.sum()), "scores": scores, "hnsw": hnsw}
    return head | server | {"rows": rows}


def use_searcher(g, searcher: type) -> None:
    """Search the PostgreSQL gallery ``g`` (``index="ann"``) with ``searcher`` (a ``PgSearcher`` class)
    instead of the one its store chose."""
    g.store.searcher.close()
    g.store.searcher = searcher(g.store)
    assert type(g._searcher()) is searcher


def server_facts(db) -> dict:
    """The server's PostgreSQL and pgvector versions and whether its shared buffers are on huge pages."""
    return {
        "postgresql": db.execute("SHOW server_version").fetchone()[0],
        "pgvector": db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],
        "huge_pages": db.execute("SHOW huge_pages_status").fetchone()[0],
    }


def answer(arms: dict, queries: np.ndarray, exact: list[str], top_k: int = 10) -> tuple[dict, dict]:
    """Each arm (name: gallery and its ``ef_search``, None to leave it) identifies every query in a block
    (20 first to warm up), twice, the second time in the reverse order: each identification's seconds
    (both rounds), and whether its best person was exact search's (first round)."""
    times: dict[str, list[float]] = {a: [] for a in arms}
    same: dict[str, list[bool]] = {a: [] for a in arms}
    for round_ in (0, 1):
        for name in list(arms) if round_ == 0 else list(arms)[::-1]:
            g, ef = arms[name]
            if ef is not None:
                g.store.searcher.ef_search = ef
            for q in queries[:20]:  # warm-up
                g.identify_embedding(q, top_k=top_k)
            for q, best in zip(queries, exact, strict=True):
                t = time.perf_counter()
                result = g.identify_embedding(q, top_k=top_k)
                times[name].append(time.perf_counter() - t)
                if round_ == 0:
                    same[name].append(result.candidates[0].name == best)
    return times, same


def row(name: str, times: list[float], same: list[bool], mated: np.ndarray) -> dict:
    """One arm's reported figures: p50 / p95 ms, and how often its best person was exact search's."""
    ok = np.array(same)
    return {
        "search": name,
        "identify_p50_ms": ms(times)[0],
        "identify_p95_ms": ms(times)[1],
        "same_best_as_exact": round(float(ok.mean()), 4),
        "same_best_mated": round(float(ok[mated].mean()), 4),
        "same_best_strangers": round(float(ok[~mated].mean()), 4),
    }


def main() -> None:
    from facegate.gallery.store_postgres import HNSW_EF_CONSTRUCTION, HNSW_M

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers")
    ap.add_argument("--ef-search", default="100,200")
    ap.add_argument("--m", type=int, default=HNSW_M)
    ap.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION)
    ap.add_argument("--huge-pages", action="store_true", help="the server's shared buffers on 2 MiB pages")
    ap.add_argument("--folder", type=Path, default=FOLDER, help="the server's folder (kept)")
    ap.add_argument(
        "--order",
        choices=tuple(SUFFIX),
        default="enrolled",
        help="the order the templates are written in (the graph is built in it); copy: by `facegate gallery copy`",
    )
    ap.add_argument("--scores", choices=("plain", "normalised"), default="plain")
    args = ap.parse_args()
    ef_values = [int(e) for e in args.ef_search.split(",")]
    normalise = args.scores == "normalised"
    out = compare(
        args.n,
        args.probes,
        ef_values,
        args.m,
        args.ef_construction,
        args.huge_pages,
        args.folder,
        args.order,
        normalise,
    )
    tag = f"{args.n}_m{out['hnsw']['m']}_efc{out['hnsw']['ef_construction']}{SUFFIX[args.order]}"
    tag += ("_huge" if args.huge_pages else "") + ("_normalised" if normalise else "")
    (OUT / f"pgvector_ab_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    server = f"{out['postgresql']}, pgvector {out['pgvector']}, huge pages {out['huge_pages']}"
    print(f"<!-- {server}; HNSW {out['hnsw']} -->")
    print("| search | identify p50 / p95 ms | best person = exact search's: all / mated / strangers |")
    print("|---|---:|---:|")
    for r in out["rows"]:
        same = f"{r['same_best_as_exact']:.3f} / {r['same_best_mated']:.3f} / {r['same_best_strangers']:.3f}"
        print(f"| {r['search']} | {r['identify_p50_ms']} / {r['identify_p95_ms']} | {same} |")


if __name__ == "__main__":
    main()
