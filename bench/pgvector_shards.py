"""pgvector's search split into shards searched at once (``gallery/pg_shards.py``) against one graph of
every template, through the gallery's whole identification, at 1M templates.

On the database ``bench/pgvector_ab.py`` made for ``--n``, ``--m``, ``--ef-construction`` and
``--order`` (the m 48 graph of the templates in the order a copy writes them), beside the m 64 /
ef_construction 256 half-precision graph of every template that ``bench/pgvector_half.py`` added,
this bench splits the search into ``--shards`` with ``facegate.gallery.pg_shards.build_shards``
(``facegate gallery shards``: the same graph settings, one partial index per shard; built once,
kept) and answers the same probes through ``Gallery.identify_embedding`` (plain distances,
``--top-k`` people) with:

- ``one graph``: the m 64 half-precision graph of every template (``pgvector_half.HalfSearcher``);
- ``N shards``: the gallery's own search of a sharded gallery (``ShardedSearcher``: every shard at
  once, a connection each, the templates found merged).

For each ``--ef-search`` (at least what the gallery asks for: 64 templates for a top 5, 100 for a
top 10), on the tuning probes (where a setting is chosen) and the reported ones
(``gallery_scale.probes``), the arms answer every probe in a block, twice, the second time in the
reverse order (``pgvector_ab.answer``). Reported: p50 / p95 ms, how often the best person is exact
search's, the shared-buffer pages one search reads (for the shards: shard 0's search), and the
time to enrol one more person with either layout's indexes only (``--enrol``, last: each enrolment is
rolled back, but pgvector has already linked its element into the graphs, so a later run measures
graphs holding those dead elements; ``VACUUM templates`` removes them).

    echo 3400 > /proc/sys/vm/nr_hugepages   # as root: 6 GB of shared buffers hold the table and its graphs
    .venv/bin/python bench/pgvector_half.py --ef-search 100 --huge-pages         # the one-graph arm (54 min once)
    .venv/bin/python bench/pgvector_shards.py --ef-search 64,84,100 --huge-pages  # 2 shards (2 x 20 min once)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, probes
from pgvector_ab import SUFFIX, server_facts, use_searcher
from pgvector_half import HalfSearcher, bench_database, database_arguments, print_table, probe_sets
from pgvector_scale import MODEL

from facegate.gallery.ann import candidate_count
from facegate.gallery.pg_shards import SHARD_EF_CONSTRUCTION, SHARD_M, build_shards
from facegate.gallery.store_postgres import HNSW_INDEX, _register_vector

#: enrolments timed for each layout (rolled back)
ENROLMENTS = 50
#: where the shards' build (time, indexes) is kept in the bench database's ``meta``
BUILT = "pgvector_shards_built"


def shards_of(gallery_url: str, shards: int) -> dict:
    """The gallery split into ``shards`` (the store's own build; kept): its build report, recorded once."""
    import psycopg

    from facegate.gallery.backends import open_existing

    store = open_existing(gallery_url)
    try:
        report = build_shards(store, shards, SHARD_M, SHARD_EF_CONSTRUCTION)
    finally:
        store.close()
    with psycopg.connect(gallery_url, autocommit=True) as db:
        if report.built:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (BUILT, json.dumps(report.to_dict())),
            )
        kept = db.execute("SELECT value FROM meta WHERE key = %s", (BUILT,)).fetchone()
        sizes = {
            name: round(db.execute(f"SELECT pg_relation_size('{name}')").fetchone()[0] / 2**20)
            for name in report.built + report.kept
        }
    return {**(json.loads(kept[0]) if kept else {}), "index_mb": sizes}


def enrol_ms(gallery_url: str, drop: list[str], queries: np.ndarray, model: str) -> float:
    """The p50 ms to enrol one more person (one template) with the table's HNSW indexes but ``drop``:
    each enrolment a transaction that drops those first (PostgreSQL's DROP INDEX is
    transactional) and is rolled back: the rows and indexes are as they were, but each graph timed
    keeps the element pgvector linked into it, pointing to a dead row (``--enrol``)."""
    import psycopg

    from facegate.gallery.store_postgres import Vector

    times = []
    with psycopg.connect(gallery_url) as db:
        _register_vector(db)
        for i, q in enumerate(queries):
            with db.transaction(force_rollback=True):
                for name in drop:
                    db.execute(f"DROP INDEX {name}")
                start = time.perf_counter()
                person = db.execute(
                    "INSERT INTO people (name, created_at) VALUES (%s, 'now') RETURNING id", (f"bench-enrol-{i}",)
                ).fetchone()[0]
                db.execute(
                    "INSERT INTO templates (person_id, embedding, model, image_sha256, box, created_at) "
                    "VALUES (%s, %s, %s, %s, '{}', 'now')",
                    (person, Vector(q), model, f"{i:064x}"),
                )
                times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 2)


def compare(args: argparse.Namespace) -> dict:
    import psycopg

    from facegate.gallery import Gallery

    asked = candidate_count(args.top_k)
    efs = sorted({max(ef, asked) for ef in args.ef_search})
    with bench_database(args, SHARD_M, SHARD_EF_CONSTRUCTION) as (gallery_url, made, half_name, half):
        split = shards_of(gallery_url, args.shards)
        with psycopg.connect(gallery_url, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            for name in (half_name, *split["index_mb"], "templates"):
                db.execute(f"SELECT pg_prewarm('{name}')")
            server = server_facts(db)
        sharded = Gallery(gallery_url, index="ann", normalise=False)
        one = Gallery(gallery_url, index="ann", normalise=False)
        use_searcher(one, HalfSearcher)
        assert sharded.store.searcher.layout.shards == args.shards
        arms = {
            f"{kind}, ef_search {ef}": (g, ef)
            for kind, g in (("one graph", one), (f"{args.shards} shards", sharded))
            for ef in efs
        }
        sets = probe_sets(gallery_url, args.n, args.probes, arms, args.top_k)
        sharded.close()
        one.close()
        enrol = None
        if args.enrol:
            hnsw = [HNSW_INDEX, half_name, *split["index_mb"]]
            enrol_queries = probes(args.probes, tuning=True)[0][:ENROLMENTS].astype(np.float32)
            enrol = {
                label: enrol_ms(gallery_url, [n for n in hnsw if n not in keep], enrol_queries, MODEL)
                for label, keep in (("one graph", [half_name]), (f"{args.shards} shards", list(split["index_mb"])))
            }
    graphs = {
        "one graph": {"m": SHARD_M, "ef_construction": SHARD_EF_CONSTRUCTION, "order": args.order, **half},
        "shards": {"shards": args.shards, "order": args.order, **split},
        "store": {"m": args.m, "ef_construction": args.ef_construction, "index": HNSW_INDEX, **made},
    }
    out = {"templates": args.n, "top_k": args.top_k, "asked": asked, **server, "graphs": graphs, **sets}
    return out | {"enrol_one_more_p50_ms": enrol}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    database_arguments(ap)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--ef-search", type=lambda s: [int(e) for e in s.split(",")], default=[64, 84, 100])
    ap.add_argument("--top-k", type=int, default=5, help="the people each identification asks for")
    ap.add_argument(
        "--enrol",
        action="store_true",
        help="also time enrolling one more person (changes the graphs: each enrolment's element stays in them)",
    )
    args = ap.parse_args()
    out = compare(args)
    tag = f"{args.n}_m{args.m}_efc{args.ef_construction}{SUFFIX[args.order]}_shards{args.shards}_top{args.top_k}"
    (OUT / f"pgvector_shards_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    print_table(out)
    if out["enrol_one_more_p50_ms"]:
        print(f"enrol one more person (one template), p50 ms: {out['enrol_one_more_p50_ms']}")


if __name__ == "__main__":
    main()
