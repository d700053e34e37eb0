"""The approximate index of large galleries (facegate.gallery.ann): it answers as exact
search does, persists beside the gallery, follows enrolment and removal without a
rebuild, is rebuilt or brought up to date when its files are missing, stale or
damaged, and agrees with the store after the enrolling process is killed."""

from __future__ import annotations

import functools
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegate.decisions import scoring_for
from facegate.gallery import Gallery, hugepages
from facegate.gallery import ann as ann_module
from facegate.gallery import ivf as ivf_module
from facegate.gallery.ann import ANN_MIN_TEMPLATES, LINKS, AnnSearch, HnswGraph, header_path, resolve_search

pytest.importorskip("hnswlib", reason="the ann extra is not installed (make install installs it)")
pytest.importorskip("faiss", reason="the ann extra is not installed (make install installs it)")

MODEL = "dlib-resnet"  # 128-d, euclidean, cohort-normalised scores: the default decisions
DIM = 128


@functools.cache
def _face_space() -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance factor of real faces: the default scoring's cohort (one LFW training person a row)."""
    cohort = scoring_for(MODEL, "euclidean").norm.cohort.astype(np.float64)
    mu = cohort.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(cohort.T))
    return mu, (vecs * np.sqrt(np.clip(vals, 0, None))).T


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


#: per-coordinate spread of a person's photos: two photos of one person about 0.3 apart, as dlib's are
WITHIN = 0.3 / np.sqrt(2 * DIM)


def people_vectors(n_people: int, seed: int, per_person: int | None = None) -> dict[str, np.ndarray]:
    """Unit-length templates of ``n_people`` people drawn like real faces: a centre from the
    spread of real people, templates about 0.3 apart around it (strangers about 0.55)."""
    mu, factor = _face_space()
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_people):
        centre = mu + rng.standard_normal(DIM) @ factor
        m = per_person or int(rng.integers(1, 4))
        out[f"p{seed}_{i}"] = _unit(centre + rng.standard_normal((m, DIM)) * WITHIN)
    return out


def probes_of(people: dict[str, np.ndarray], n: int, seed: int) -> tuple[list[str | None], np.ndarray]:
    """``n`` mated probes (a fresh photo near an enrolled template) and ``n`` strangers."""
    rng = np.random.default_rng(seed)
    names = sorted(people)
    truth: list[str | None] = []
    rows = []
    for name in rng.choice(names, n, replace=False):
        rows.append(_unit(people[name][0] + rng.standard_normal(DIM) * WITHIN))
        truth.append(str(name))
    strangers = people_vectors(n, seed=seed + 100_000, per_person=1)
    rows.extend(v[0] for v in strangers.values())
    truth.extend([None] * n)
    return truth, np.array(rows, np.float32)


def same_best(a, b) -> bool:
    """The same answer and best candidate: identity, name and exact distance equal; score and
    threshold equal up to float32 rounding: the people's cohort statistics are computed in
    batches of other sizes in each gallery, their float32 cohort distances differ by about 1e-7,
    and a spread of about 0.01 turns that into 1e-5 of a score (relative: a close match's score
    is about -20)."""
    x, y = a.candidates[0], b.candidates[0]
    return (
        (a.identity, x.name, x.distance, a.enrolled_people) == (b.identity, y.name, y.distance, b.enrolled_people)
        and y.score == pytest.approx(x.score, rel=1e-5, abs=1e-4)
        and b.threshold == pytest.approx(a.threshold, abs=1e-5)
    )


def store_templates(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, person_id FROM templates ORDER BY id").fetchall()
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64)


def assert_agrees_with_store(gallery: Gallery, path: Path) -> None:
    ids, owners = store_templates(path)
    assert gallery.ann is not None
    np.testing.assert_array_equal(gallery.ann.ids, ids)
    np.testing.assert_array_equal(gallery.ann.owners, owners)
    assert gallery.ann.graph.live == len(ids)
    if gallery.ann.penalty is not None:  # every template holds its owner's penalty as the statistics are now
        held = gallery.ann.graph.vectors(ids)[:, -2:]
        np.testing.assert_allclose(held[:, 0], np.sqrt(gallery.ann.penalty(owners)), rtol=1e-6)
        np.testing.assert_array_equal(held[:, 1], 0)


@pytest.fixture(autouse=True, params=sorted(ann_module.INDEXES))
def kind(request, monkeypatch) -> str:
    """Every test runs on each index (``index="ann"`` is the one under test). The inverted lists are
    trained from 64 templates on, so that the small galleries here have lists too, and scanned whole:
    these tests check that the index follows the store and answers as exact search does, whatever
    its recall (which bench/gallery_scale.py measures)."""
    monkeypatch.setattr(ann_module, "INDEX", request.param)
    monkeypatch.setattr(ivf_module, "MIN_TRAIN", 64)
    monkeypatch.setattr(ivf_module, "PROBE_SHARE", {0: 1.0})
    return request.param


def test_auto_switches_at_the_measured_size():
    assert resolve_search("auto", ANN_MIN_TEMPLATES - 1) == "exact"
    assert resolve_search("auto", ANN_MIN_TEMPLATES) == "ann"
    assert resolve_search("exact", 10**7) == "exact"
    assert resolve_search("ann", 3) == "ann"
    with pytest.raises(ValueError, match="unknown search"):
        resolve_search("fast", 3)


# -- the same answers as exact search, on a gallery above the switch -------------------
@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A gallery of about 20k templates (10,000 people), enrolled once."""
    path = tmp_path_factory.mktemp("large") / "g.sqlite"
    people = people_vectors(10_000, seed=1)
    with Gallery(path, model_name=MODEL, index="exact") as g:
        g.add_embeddings_bulk(people)
    return path, people


@pytest.mark.slow
def test_ann_answers_as_exact_search_does(large):
    path, people = large
    truth, probes = probes_of(people, 60, seed=2)
    with Gallery(path, index="exact") as exact, Gallery(path, index="ann") as approx:
        assert (exact.search_kind, approx.search_kind) == ("exact", "ann")
        assert approx.template_count == exact.template_count == sum(len(v) for v in people.values())
        a = [exact.identify_embedding(p) for p in probes]
        b = [approx.identify_embedding(p) for p in probes]
        assert [r.identity for r in a] == truth  # the probes are easy: every answer is right
        # mated probes: identity, the best candidate's exact distance and score, the open-set threshold
        assert [same_best(x, y) for x, y in zip(a[:60], b[:60], strict=True)] == [True] * 60
        # strangers: the same answer (nobody); their best-scoring stranger may be another one
        assert [r.identity for r in b[60:]] == [None] * 60
        for probe, name in zip(probes[:20], truth[:20], strict=True):
            other = "p1_0" if name != "p1_0" else "p1_1"
            for claim in (name, other):
                va, vb = exact.verify_embedding(probe, claim), approx.verify_embedding(probe, claim)
                assert (vb.verified, vb.distance) == (va.verified, va.distance)
                assert vb.threshold == pytest.approx(va.threshold, abs=1e-5)


@pytest.mark.slow
def test_a_reopened_gallery_uses_the_saved_graph(large):
    path, _ = large
    with Gallery(path, index="ann") as g:
        assert g.ann is not None
    head = header_path(path)
    saved = head.stat().st_mtime_ns
    builds = AnnSearch.builds
    with Gallery(path, index="ann") as g:
        assert g.ann.origin == "loaded"
        assert_agrees_with_store(g, path)
    assert AnnSearch.builds == builds
    assert head.stat().st_mtime_ns == saved  # nothing changed: nothing written


# -- changes without a rebuild ---------------------------------------------------------
@pytest.fixture
def small(tmp_path):
    path = tmp_path / "g.sqlite"
    people = people_vectors(300, seed=3)
    with Gallery(path, model_name=MODEL, index="ann") as g:
        g.add_embeddings_bulk(people)
    return path, people


def test_enrol_and_remove_update_the_graph_without_a_rebuild(small):
    path, people = small
    newcomer = people_vectors(1, seed=4, per_person=2)["p4_0"]
    with Gallery(path, index="ann") as g:
        builds = AnnSearch.builds
        g.add_embeddings("newcomer", newcomer)
        assert g.identify_embedding(newcomer[0]).identity == "newcomer"
        g.add_embeddings("p3_5", people["p3_5"][:1] * 0.99 + 0.01)  # one more photo of someone enrolled
        g.remove("p3_7")
        g.rename("p3_8", "renamed")
        assert g.identify_embedding(people["p3_7"][0]).identity is None
        assert g.identify_embedding(people["p3_8"][0]).identity == "renamed"
        assert_agrees_with_store(g, path)
        assert AnnSearch.builds == builds
    with Gallery(path, index="ann") as g:  # saved on close: loaded as it was
        assert g.ann.origin == "loaded"
        assert_agrees_with_store(g, path)
        assert g.identify_embedding(newcomer[1]).identity == "newcomer"
    assert AnnSearch.builds == builds


def test_more_templates_for_a_person_move_the_penalty_of_their_earlier_ones(small):
    """With the default normalised scores the index holds each person's penalty, from their
    cohort statistics, which move when they get a template: every template of theirs follows."""
    path, _ = small
    with Gallery(path, index="ann") as g:
        assert g.ann.penalty is not None
        before = g.ann.graph.vectors(g.ann.ids[g.ann.owners == g.store.person_id("p3_1")])[:, -2]
        g.add_embeddings("p3_1", people_vectors(1, seed=9)["p9_0"])
        assert_agrees_with_store(g, path)
        after = g.ann.graph.vectors(g.ann.ids[g.ann.owners == g.store.person_id("p3_1")])[:, -2]
        assert len(after) > len(before) and after[0] != before[0]
    with Gallery(path, index="ann") as g:
        assert g.ann.origin == "loaded"
        assert_agrees_with_store(g, path)


def test_plain_distances_on_an_index_ordered_for_normalised_scores_are_searched_exactly(small):
    """A call's raw threshold means plain distances, which the penalised order does not serve:
    such a call scores every person, and answers as exact search does."""
    path, people = small
    probe = people["p3_4"][0] + 0.01
    with Gallery(path, index="exact") as exact, Gallery(path, index="ann") as approx:
        assert approx.ann.penalty is not None
        approx.ann.nearest = None  # not asked
        a, b = exact.identify_embedding(probe, threshold=0.5), approx.identify_embedding(probe, threshold=0.5)
        assert b.identity == a.identity == "p3_4"
        assert b.candidates == a.candidates and b.threshold == a.threshold == 0.5


def test_a_stale_graph_is_brought_up_to_date(small):
    path, people = small
    extra = people_vectors(2, seed=5, per_person=2)
    with Gallery(path, index="exact") as g:  # another program changes the gallery; the graph is not told
        g.add_embeddings("p3_2", people_vectors(1, seed=11)["p11_0"])  # with normalised scores, a penalty moves
        g.remove("p3_0")
        g.add_embeddings("first", extra["p5_0"])
        g.remove("first")  # its template ids are the highest: SQLite gives them to the next one
        g.add_embeddings("second", extra["p5_1"])
    builds = AnnSearch.builds
    with Gallery(path, index="ann") as g:
        assert g.ann.origin == "updated"
        assert_agrees_with_store(g, path)
        ids, _ = store_templates(path)
        np.testing.assert_array_equal(g.ann.graph.vectors(ids[-2:])[:, :128], extra["p5_1"])
        assert g.identify_embedding(extra["p5_1"][0]).identity == "second"
        assert g.identify_embedding(extra["p5_0"][0]).identity is None
        assert g.identify_embedding(people["p3_0"][0]).identity is None
    assert AnnSearch.builds == builds
    with Gallery(path, index="ann") as g:
        assert g.ann.origin == "loaded"


def _graph_file(path: Path) -> Path:
    header = json.loads(header_path(path).read_text())
    return path.parent / header["graph"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("missing", "no index beside the gallery"),
        ("header", "the index's header is damaged"),
        ("overwritten", "the index's data file is damaged (size or checksum differs)"),
        ("truncated", "the index's data file is damaged (size or checksum differs)"),
        ("ids gone", "the index's ids file is missing"),
        ("other gallery", "the index beside the gallery belongs to another gallery"),
        ("other parameters", "the index was built with other parameters"),
    ],
)
def test_a_missing_or_damaged_graph_is_rebuilt(small, tmp_path, damage, reason):
    path, people = small
    head = header_path(path)
    graph = _graph_file(path)
    if damage == "missing":
        head.unlink()
    elif damage == "header":
        head.write_text(head.read_text()[:40])
    elif damage == "overwritten":
        data = bytearray(graph.read_bytes())
        data[len(data) // 3 : len(data) // 3 + 4096] = bytes(4096)
        graph.write_bytes(bytes(data))
    elif damage == "truncated":
        graph.write_bytes(graph.read_bytes()[:-100])
    elif damage == "ids gone":
        (path.parent / json.loads(head.read_text())["ids"]).unlink()
    elif damage == "other parameters":  # saved by a facegate whose graphs had 16 links
        head.write_text(json.dumps({**json.loads(head.read_text()), "params": {"links": 16, "ef_construction": 100}}))
    else:
        other = tmp_path / "other" / "g.sqlite"
        other.parent.mkdir()
        with Gallery(other, model_name=MODEL, index="ann") as g:
            g.add_embeddings_bulk(people_vectors(5, seed=6))
        header = json.loads(header_path(other).read_text())
        ours = json.loads(head.read_text())
        head.write_text(json.dumps({**ours, "gallery": header["gallery"]}))
    builds = AnnSearch.builds
    with Gallery(path, index="ann") as g:
        assert (g.ann.origin, g.ann.reason) == ("built", reason)
        assert_agrees_with_store(g, path)
        assert g.identify_embedding(people["p3_9"][0]).identity == "p3_9"
    assert AnnSearch.builds == builds + 1
    with Gallery(path, index="ann") as g:
        assert g.ann.origin == "loaded"


@pytest.mark.skipif(not hugepages.offered(), reason="this kernel gives no transparent huge pages")
def test_the_graphs_memory_asks_for_huge_pages_when_made_and_when_loaded(tmp_path):
    # in a fresh process, as a gallery opened at startup: in this one, glibc may serve the block
    # from heap space that earlier tests freed, which no new mapping shows
    script = textwrap.dedent(
        f"""
        import json
        import numpy as np
        from facegate.gallery.ann import HnswGraph
        dim, capacity = 4096, 2200
        graph = HnswGraph(dim, capacity=capacity)
        made = vars(graph.memory).copy()
        vectors = np.random.default_rng(0).standard_normal((capacity, dim)).astype(np.float32)
        graph.add(np.arange(capacity), vectors, threads=2)
        graph.save({str(tmp_path / "graph.hnsw")!r})
        loaded = HnswGraph.load({str(tmp_path / "graph.hnsw")!r}, dim, capacity, np.zeros(0, np.int64))
        found = int(loaded.search(vectors[7], 1)[0])
        print(json.dumps({{"made": made, "loaded": vars(loaded.memory), "found": found}}))
        """
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    dim, capacity = 4096, 2200  # a block of 37 MB, quick to fill
    block = capacity * (4 + 2 * LINKS * 4 + dim * 4 + 8)  # hnswlib's level 0: per template its links, vector, label
    # the block and what hnswlib maps beside it (its lock tables: 40-byte mutexes, one per template and 65,536 more)
    beside = (capacity + 65_536) * 40
    assert block - 2 * hugepages.HUGE_PAGE <= out["made"]["advised"] <= block + beside
    assert out["made"]["collapsed"] == 0  # nothing written yet: pages come huge as templates are added
    assert block - 2 * hugepages.HUGE_PAGE <= out["loaded"]["advised"] <= block + beside
    assert out["loaded"]["collapsed"] == out["loaded"]["advised"]  # all of it written when read from the file
    assert out["found"] == 7


def test_a_graph_is_built_in_a_shuffled_order_not_in_enrolment_order(monkeypatch):
    added = []
    real_add = HnswGraph.add

    def spy(self, ids, vectors, threads=1):
        added.append(np.asarray(ids).copy())
        return real_add(self, ids, vectors, threads)

    monkeypatch.setattr(HnswGraph, "add", spy)
    ids = np.arange(1, 301)
    owners = (ids + 1) // 2  # two templates a person
    matrix = _unit(np.random.default_rng(3).standard_normal((300, DIM)))
    search = AnnSearch.open(None, "a gallery", 1, ids, owners, matrix, normalise=True, kind="hnsw")
    shuffled = np.random.default_rng(ann_module.BUILD_ORDER_SEED).permutation(300)
    assert [a.tolist() for a in added] == [ids[shuffled].tolist()]
    assert search.ids.tolist() == ids.tolist()  # kept by id, whatever the graph's order
    assert search.candidates(matrix[41], 1)[0] == owners[41]


def test_a_store_that_searches_itself_provides_the_candidates(small):
    path, people = small
    with Gallery(path, index="ann") as g:

        class Only:
            def candidates(self, query, k):
                return [g.store.person_id("p3_2")]

        g.store.searcher = Only()
        # the searcher's candidates are scored exactly: p3_2 is far, so the probe is a stranger
        result = g.identify_embedding(people["p3_1"][0])
        assert [c.name for c in result.candidates] == ["p3_2"]
        assert result.identity is None
        assert result.distance == round(g._index.exact_distance(people["p3_1"][0], g.store.person_id("p3_2")), 6)


# -- a property: the graph's best person is exact search's -----------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_people=st.integers(1, 120), seed=st.integers(0, 10_000), normalise=st.booleans())
def test_ann_top1_is_exact_top1_on_small_galleries(n_people, seed, normalise):
    people = people_vectors(n_people, seed=seed)
    truth, probes = probes_of(people, min(5, n_people), seed=seed + 1)
    with (
        Gallery(":memory:", model_name=MODEL, index="exact", normalise=normalise) as exact,
        Gallery(":memory:", model_name=MODEL, index="ann", normalise=normalise) as approx,
    ):
        exact.add_embeddings_bulk(people)
        approx.add_embeddings_bulk(people)
        assert approx.search_kind == "ann"
        for p, name in zip(probes, truth, strict=True):
            a, b = exact.identify_embedding(p, top_k=1), approx.identify_embedding(p, top_k=1)
            assert b.identity == a.identity
            if name is not None:  # a stranger's best-scoring person may differ: nobody either way
                assert same_best(a, b)


# -- crash safety: SIGKILL while enrolling ---------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from facegate.gallery import Gallery
    from facegate.gallery import ann, ivf
    ann.SAVE_EVERY = 7  # save the graph often, so kills land in saves too
    ivf.MIN_TRAIN = 64  # as in the parent
    path, start, centres, kind = sys.argv[1], int(sys.argv[2]), np.load(sys.argv[3]), sys.argv[4]
    with Gallery(path, model_name="dlib-resnet", index=kind) as g:
        for i in range(start, start + 1000):
            v = centres[i] + np.random.default_rng(i).standard_normal((3, 128)) * 0.02
            g.add_embeddings(f"k{i}", (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
            if i % 5 == 4:
                g.remove(f"k{i - 2}")
            print(i, flush=True)
    """
)


def _run_until(path: Path, centres: Path, start: int, lines: int, seconds: float | None, kind: str) -> None:
    """Start an enrolling process and SIGKILL it after ``lines`` enrolments (or ``seconds``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start), str(centres), kind],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    if seconds is None:
        for _ in range(lines):
            assert proc.stdout.readline(), "the enrolling process stopped by itself"
    else:
        assert proc.stdout.readline()
        time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_while_enrolling_leaves_whole_people_and_an_agreeing_graph(tmp_path, kind):
    path = tmp_path / "g.sqlite"
    with Gallery(path, model_name=MODEL, index="ann") as g:
        g.add_embeddings_bulk(people_vectors(50, seed=7, per_person=3))
    mu, factor = _face_space()
    centres = tmp_path / "centres.npy"
    np.save(centres, mu + np.random.default_rng(8).standard_normal((8000, DIM)) @ factor)
    moments = [(1, None), (8, None), (23, None), (1, 0.05), (1, 0.4), (1, 1.3)]
    for n, (lines, seconds) in enumerate(moments):
        _run_until(path, centres, 1000 * (n + 1), lines, seconds, kind)
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            counts = db.execute(
                "SELECT p.name, COUNT(t.id) FROM people p LEFT JOIN templates t ON t.person_id = p.id GROUP BY p.id"
            ).fetchall()
        assert {c for _, c in counts} == {3}  # every person whole: three templates, never fewer
        with Gallery(path, index="ann") as g:
            assert g.ann.origin in ("loaded", "updated")
            assert_agrees_with_store(g, path)
            for name, _ in counts:
                if name.startswith("k"):
                    i = int(name[1:])
                    v = np.load(centres)[i] + np.random.default_rng(i).standard_normal((3, 128)) * 0.02
                    assert g.identify_embedding(_unit(v[0])).identity == name
    assert ann_module.SAVE_EVERY == 10_000  # the child's setting stayed in the child
