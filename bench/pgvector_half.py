"""pgvector's search on an HNSW index of the templates in half precision, beside the store's own
index, in the same table, through the gallery's whole identification.

pgvector can index an expression: ``CREATE INDEX ... USING hnsw ((embedding::halfvec(128))
halfvec_l2_ops)``, searched by ``ORDER BY embedding::halfvec(128) <-> q::halfvec(128)``. Each
template's graph element is then half the size (256 bytes of numbers instead of 512), and the
table keeps its full templates: the gallery recomputes the candidates' exact distances either way.
This bench adds such an index (``--half-m``, ``--half-ef-construction``; built once, kept) to the
database ``bench/pgvector_ab.py`` made for ``--n``, ``--m``, ``--ef-construction`` and ``--order``
(made here if missing), and answers the same probes with both through ``Gallery.identify_embedding``
(plain distances, ``--top-k`` people):

- ``vector``: the store's search (``PgSearcher``) on the table's ``vector(128)`` index;
- ``halfvec``: the same search ordered by the half-precision expression (:class:`HalfSearcher`).

For each ``--ef-search`` (the search list is at least the templates the gallery asks for:
``ann.candidate_count(top_k)``, 100 for a top 10, 64 for the default top 5), on the tuning probes
(where a setting is chosen) and on the reported ones (``gallery_scale.probes``), the arms answer
every probe in a block, twice, the second time in the reverse order. Reported: p50 / p95 ms, how
often the best person is exact search's, and the shared-buffer pages one search reads (EXPLAIN
ANALYZE on 50 probes) and the index its plan used.

    .venv/bin/python bench/pgvector_ab.py --n 1000000 --m 48 --ef-construction 200 --order locality --huge-pages
    echo 3400 > /proc/sys/vm/nr_hugepages   # as root: 6 GB of shared buffers hold both indexes
    .venv/bin/python bench/pgvector_half.py --half-m 64 --half-ef-construction 256 --ef-search 64,100,130 --huge-pages
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, exact_best, gallery_path, probes
from pgvector_ab import FOLDER, SUFFIX, answer, database, row, server_facts, use_searcher
from pgvector_scale import DIM, MODEL, SERVER

from facegate.gallery.ann import candidate_count
from facegate.gallery.store import GalleryStore
from facegate.gallery.store_postgres import HNSW_INDEX, PgSearcher, Vector, _register_vector

#: the expression the half-precision index is built on and searched by
HALF = f"embedding::halfvec({DIM})"
#: the half-precision index's build memory (m 64 keeps 128 neighbours a template on the graph's ground
#: layer: by my estimate about 2.6 KB a template in memory, near the bench server's 3 GB at 1M)
BUILD_MEMORY = "5GB"
#: probes whose search is explained (pages read, the index used)
EXPLAINED = 50


class HalfSearcher(PgSearcher):
    """The store's search, ordered by the templates' half-precision expression (its own index)."""

    def sql(self) -> str:
        return f"SELECT id, person_id FROM templates ORDER BY {HALF} <-> %s::halfvec({DIM}) LIMIT %s"


def half_index(gallery_url: str, m: int, efc: int) -> tuple[str, dict]:
    """The half-precision HNSW index beside the store's: built once (its build time kept in ``meta``)."""
    import psycopg

    name = f"templates_half_m{m}_efc{efc}"
    with psycopg.connect(gallery_url, autocommit=True) as db:
        done = db.execute("SELECT value FROM meta WHERE key = %s", (name,)).fetchone()
        if done:
            return name, json.loads(done[0])
        db.execute(f"DROP INDEX IF EXISTS {name}")
        db.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        start = time.perf_counter()
        graph = f"WITH (m = {m}, ef_construction = {efc})"
        db.execute(f"CREATE INDEX {name} ON templates USING hnsw (({HALF}) halfvec_l2_ops) {graph}")
        made = {"build_s": round(time.perf_counter() - start, 1)}
        made["index_mb"] = round(db.execute(f"SELECT pg_relation_size('{name}')").fetchone()[0] / 2**20)
        db.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (name, json.dumps(made)))
        return name, made


def pages_read(db, sql: str, queries: np.ndarray, ef: int) -> tuple[float, str]:
    """The mean shared-buffer pages one search reads (EXPLAIN ANALYZE; as the gallery asks, for as many
    templates as the search list holds) and the index its plan uses (``none``: the planner chose to
    scan the table, as it does for small galleries)."""
    db.execute(f"SET hnsw.ef_search = {ef}")
    pages, used = [], set()
    for q in queries[:EXPLAINED]:
        plan = db.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", (Vector(q), ef)).fetchone()[0][0]
        used |= set(re.findall(r'"Index Name": "([^"]+)"', json.dumps(plan))) or {"none"}
        pages.append(plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"])
    return float(np.mean(pages)), ",".join(sorted(used))


def probe_sets(gallery_url: str, n: int, n_probes: int, arms: dict, top_k: int) -> dict:
    """The tuning and the reported probes (``n_probes`` mated and as many strangers each) answered by every
    arm (``pgvector_ab.answer``): each arm's figures, with the pages its search reads and its index."""
    import psycopg

    sets = {}
    for kind in ("tuning", "reported"):
        queries, truth = probes(n_probes, tuning=kind == "tuning")
        queries = queries.astype(np.float32)
        mated = np.array([t is not None for t in truth])
        exact = exact_best(n, queries, False)
        times, same = answer(arms, queries, exact, top_k)
        rows = []
        with psycopg.connect(gallery_url, autocommit=True) as db:
            _register_vector(db)
            for label, (g, ef) in arms.items():
                pages, used = pages_read(db, g.store.searcher.sql(), queries, ef)
                figures = {"pages_per_search": round(pages), "index_used": used}
                rows.append(row(label, times[label], same[label], mated) | figures)
        sets[kind] = {"probes": len(queries), "mated": int(mated.sum()), "rows": rows}
    return sets


def print_table(out: dict) -> None:
    """A run's rows as the README's table (the server and graphs in a comment first)."""
    print(f"<!-- {out['postgresql']}, pgvector {out['pgvector']}, huge pages {out['huge_pages']}; {out['graphs']} -->")
    print("| probes | search | identify p50 / p95 ms | best = exact's: all / mated / strangers | pages | index |")
    print("|---|---|---:|---:|---:|---|")
    for kind in ("tuning", "reported"):
        for r in out[kind]["rows"]:
            same = f"{r['same_best_as_exact']:.3f} / {r['same_best_mated']:.3f} / {r['same_best_strangers']:.3f}"
            p50, p95 = r["identify_p50_ms"], r["identify_p95_ms"]
            print(f"| {kind} | {r['search']} | {p50} / {p95} | {same} | {r['pages_per_search']} | {r['index_used']} |")


@contextmanager
def bench_database(args: argparse.Namespace, half_m: int, half_efc: int) -> Iterator[tuple[str, dict, str, dict]]:
    """The bench server, started with this run's settings (``--shared-buffers``, ``--huge-pages``), and
    ``pgvector_ab.py``'s database for ``args`` with the half-precision index beside the store's: its URL,
    how it was made, the half-precision index's name and how that was made."""
    from facegate.gallery.pg_embedded import temporary_server

    settings = {**SERVER, "shared_buffers": args.shared_buffers, "huge_pages": "on" if args.huge_pages else "off"}
    local = GalleryStore(gallery_path(args.n), MODEL, DIM, create=False)
    with temporary_server(args.folder, settings, keep=True) as url:
        gallery_url, made = database(url, args.n, args.m, args.ef_construction, local, args.order)
        local.close()
        name, half = half_index(gallery_url, half_m, half_efc)
        yield gallery_url, made, name, half


def compare(args: argparse.Namespace) -> dict:
    import psycopg

    from facegate.gallery import Gallery

    asked = candidate_count(args.top_k)
    efs = sorted({max(ef, asked) for ef in args.ef_search})
    with bench_database(args, args.half_m, args.half_ef_construction) as (gallery_url, made, name, half):
        with psycopg.connect(gallery_url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            db.execute(f"SELECT pg_prewarm('{HNSW_INDEX}'), pg_prewarm('{name}'), pg_prewarm('templates')")
            server = server_facts(db)
        vector = Gallery(gallery_url, index="ann", normalise=False)
        halfvec = Gallery(gallery_url, index="ann", normalise=False)
        use_searcher(vector, PgSearcher)  # whether or not the gallery has shards
        use_searcher(halfvec, HalfSearcher)
        arms = {
            f"{kind}, ef_search {ef}": (g, ef) for kind, g in (("vector", vector), ("halfvec", halfvec)) for ef in efs
        }
        sets = probe_sets(gallery_url, args.n, args.probes, arms, args.top_k)
        vector.close()
        halfvec.close()
    graphs = {
        "vector": {"m": args.m, "ef_construction": args.ef_construction, "order": args.order, **made},
        "halfvec": {"m": args.half_m, "ef_construction": args.half_ef_construction, "order": args.order, **half},
    }
    return {"templates": args.n, "top_k": args.top_k, "asked": asked, **server, "graphs": graphs, **sets}


def database_arguments(ap: argparse.ArgumentParser) -> None:
    """The options naming ``pgvector_ab.py``'s database, the probes and the server's settings."""
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers, in each set")
    ap.add_argument("--m", type=int, default=48, help="the store's index: pgvector_ab.py's database")
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--order", choices=tuple(s for s in SUFFIX if s != "copy"), default="locality")
    ap.add_argument("--huge-pages", action="store_true", help="the server's shared buffers on 2 MiB pages")
    ap.add_argument("--shared-buffers", default="6GB", help="enough for the table and its indexes")
    ap.add_argument("--folder", type=Path, default=FOLDER, help="the server's folder (kept)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    database_arguments(ap)
    ap.add_argument("--half-m", type=int, default=64)
    ap.add_argument("--half-ef-construction", type=int, default=256)
    ap.add_argument("--ef-search", type=lambda s: [int(e) for e in s.split(",")], default=[64, 100, 130])
    ap.add_argument("--top-k", type=int, default=10, help="the people each identification asks for")
    args = ap.parse_args()
    out = compare(args)
    tag = f"{args.n}_m{args.m}_efc{args.ef_construction}{SUFFIX[args.order]}"
    tag += f"_half_m{args.half_m}_efc{args.half_ef_construction}_top{args.top_k}"
    (OUT / f"pgvector_half_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    print_table(out)


if __name__ == "__main__":
    main()
