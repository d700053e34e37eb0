"""pgvector's recall by the order its HNSW graph is built in, several builds of each.

pgvector adds rows to its graph in the table's order. This bench writes ``bench/gallery_scale.py``'s
gallery of ``--n`` templates into PostgreSQL (binary COPY, the HNSW index built after, m 16 and
ef_construction 64 as the store's) in each ``--orders``:

- ``enrolled``: the SQLite gallery's order (the LFW people first, as one block);
- ``shuffled``: a random order (one per seed);
- ``locality``: ``facegate.gallery.locality.locality_order`` of the enrolment order, as ``facegate
  gallery copy`` writes them (its k-means seeded);
- ``locality_shuffled``: the same of a random order (the groups' templates in that random order).

Each build is asked, for ``gallery_scale``'s real probes (reported and tuning sets, plain distances),
for as many templates as its ``hnsw.ef_search`` (``--ef-search``); recall is how often the
owner of the exact nearest template is among their owners (what the gallery's exact rescoring then
finds). A graph built twice differs (the parallel build, the seeds), hence several seeds:
the mean and the range of the builds are reported. Databases are dropped after each build.

    .venv/bin/python bench/pgvector_order.py --n 100000 --ef-search 10,20,40 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gallery_scale import OUT, gallery_path, probes
from hnsw_budget import exact_owners
from pgvector_ab import FOLDER, fill, order_of
from pgvector_scale import SERVER

ORDERS = ("enrolled", "shuffled", "locality", "locality_shuffled")


def one_build(url: str, kind: str, seed: int, data: tuple, queries: np.ndarray, truth: np.ndarray, efs: list[int]):
    import psycopg

    from facegate.gallery.store_postgres import Vector, _register_vector

    owners, matrix, names = data
    name = "order_bench"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    gallery_url = url.replace("/postgres?", f"/{name}?")
    order = order_of(kind, seed, matrix)
    build_s = fill(gallery_url, names, owners[order], matrix[order], 16, 64)["build_s"]
    recalls = []
    with psycopg.connect(gallery_url, autocommit=True) as db:
        _register_vector(db)
        sql = "SELECT person_id FROM templates ORDER BY embedding <-> %s LIMIT %s"
        for ef in efs:
            db.execute(f"SET hnsw.ef_search = {ef}")
            found = [t in {p for (p,) in db.execute(sql, (Vector(q), ef))} for q, t in zip(queries, truth, strict=True)]
            recalls.append(round(float(np.mean(found)), 4))
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name}")
    return {"order": kind, "seed": seed, "build_s": round(build_s, 1), "recall": recalls}


def main() -> None:
    from facegate.gallery import Gallery
    from facegate.gallery.pg_embedded import temporary_server

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ef-search", default="10,20,40")
    ap.add_argument("--probes", type=int, default=200, help="mated probes and as many strangers, in each set")
    ap.add_argument("--folder", type=Path, default=FOLDER, help="the server's folder (kept)")
    args = ap.parse_args()
    efs = [int(e) for e in args.ef_search.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    reported, _ = probes(args.probes)
    tuning, _ = probes(args.probes, tuning=True)
    queries = np.r_[reported, tuning].astype(np.float32)
    with Gallery(gallery_path(args.n), index="exact") as g:
        _, owners, matrix, names = g.store.load_templates()
    truth = exact_owners(owners, matrix, queries)
    builds = []
    with temporary_server(args.folder, SERVER, keep=True) as url:
        for kind in args.orders.split(","):
            for seed in seeds[:1] if kind == "enrolled" else seeds:  # the enrolment order has no seed
                builds.append(one_build(url, kind, seed, (owners, matrix, names), queries, truth, efs))
                print(builds[-1], flush=True)
    out = {"templates": args.n, "probes": len(queries), "ef_search": efs, "builds": builds}
    (OUT / f"pgvector_order_{args.n}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n| order (builds) | recall at ef_search {' / '.join(map(str, efs))}: mean (lowest–highest) |")
    print("|---|---|")
    for kind in dict.fromkeys(b["order"] for b in builds):
        rows = np.array([b["recall"] for b in builds if b["order"] == kind])
        cells = " / ".join(
            f"{m:.3f} ({lo:.3f}–{hi:.3f})" for m, lo, hi in zip(rows.mean(0), rows.min(0), rows.max(0), strict=True)
        )
        print(f"| {kind} ({len(rows)}) | {cells} |")


if __name__ == "__main__":
    main()
