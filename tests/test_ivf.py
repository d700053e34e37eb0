"""The inverted-file index (facegate.gallery.ivf): exact answers over its candidates, lists trained
at the right size and again as it grows, removal without faiss's corrupting remove, and its file."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegate.gallery import ivf
from facegate.gallery.ann import AnnIndexError
from facegate.gallery.ivf import IvfIndex

faiss = pytest.importorskip("faiss", reason="the ann extra is not installed (make install installs it)")

DIM = 16


def vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def exact_nearest(ids: np.ndarray, x: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    d = ((x - q) ** 2).sum(1)
    return ids[np.argsort(d, kind="stable")[:k]].tolist()


@pytest.fixture
def whole(monkeypatch):
    """Lists from 64 templates on, every list scanned: the answers are then exact."""
    monkeypatch.setattr(ivf, "MIN_TRAIN", 64)
    monkeypatch.setattr(ivf, "PROBE_SHARE", {0: 1.0})


def test_lists_number_about_half_the_square_root_of_the_templates():
    assert [ivf.list_count(n) for n in (100, 20_000, 100_000, 1_000_000)] == [8, 71, 158, 500]
    assert [ivf.probe_share(n) for n in (2_000, 49_999, 50_000, 299_999, 1_000_000)] == [0.5, 0.5, 0.4, 0.4, 0.3]


def test_below_min_train_every_vector_is_scored():
    index = IvfIndex(DIM)
    x, ids = vectors(500, 0), np.arange(10, 510)
    index.add(ids, x)
    assert index.lists == 0
    assert index.search(x[7], 5).tolist() == exact_nearest(ids, x, x[7], 5)


@pytest.mark.usefixtures("whole")
def test_lists_are_trained_then_trained_again_after_growing_four_times():
    index = IvfIndex(DIM)
    index.add(np.arange(1, 64), vectors(63, 1))
    assert index.lists == 0
    index.add(np.arange(64, 101), vectors(37, 2))  # 100 templates: lists
    assert index.lists == ivf.list_count(100) == 8
    index.add(np.arange(101, 400), vectors(299, 3))  # 399 < 4 x 100: the same lists, new codes
    assert (index.lists, index._trained_at, index._lists.ntotal) == (8, 100, 399)
    index.add(np.arange(400, 1_000), vectors(600, 4))  # 999 >= 400: trained again
    assert (index.lists, index._trained_at, index._lists.ntotal) == (ivf.list_count(999), 999, 999)


@pytest.mark.usefixtures("whole")
def test_removed_templates_are_never_found_and_the_rest_still_find_themselves():
    # faiss-cpu 1.15's remove_ids on fast-scan lists leaves the remaining codes misaligned (after
    # a few removals and additions a template no longer finds itself); the index never calls it
    index = IvfIndex(DIM)
    x = vectors(3_000, 5)
    ids = np.arange(1, 3_001)
    index.add(ids, x)
    rng = np.random.default_rng(6)
    live = dict(zip(ids.tolist(), x, strict=True))
    for step in range(4):
        gone = rng.choice(sorted(live), 300, replace=False)
        index.remove(gone)
        back = gone[:150]
        fresh = vectors(150, 100 + step)  # a removed id comes back with a new vector
        index.add(back, fresh)
        for i in gone[150:]:
            del live[int(i)]
        live.update(zip(back.tolist(), fresh, strict=True))
    assert index.live == len(live) == 3_000 - 4 * 150
    held_ids = np.array(sorted(live))
    held = np.array([live[i] for i in held_ids])
    assert [index.search(v, 10)[0] for v in held] == held_ids.tolist()  # each its own nearest
    gone = np.setdiff1d(ids, held_ids)
    found = np.concatenate([index.search(v, 10) for v in x[gone - 1]])  # the removed templates' old vectors
    assert np.intersect1d(found, gone).tolist() == []
    np.testing.assert_array_equal(index.vectors(held_ids), held)


@pytest.mark.usefixtures("whole")
def test_a_quarter_of_the_rows_dead_fills_the_lists_again_from_the_live_ones():
    index = IvfIndex(DIM)
    index.add(np.arange(1, 1_001), vectors(1_000, 7))
    index.remove(np.arange(1, 250))
    assert (index._rows, index._lists.ntotal) == (1_000, 1_000)  # 249 dead rows: kept, skipped
    index.remove(np.array([250]))
    assert (index._rows, index._lists.ntotal, index.live) == (750, 750, 750)


@pytest.mark.usefixtures("whole")
def test_splitting_the_lists_between_threads_gives_the_same_answers(monkeypatch):
    index = IvfIndex(DIM)
    x = vectors(4_000, 8)
    index.add(np.arange(4_000), x)
    queries = vectors(30, 9)
    monkeypatch.setattr(ivf, "PROBE_SHARE", {0: 0.3})
    monkeypatch.setattr(ivf, "SEARCH_THREADS", 2)
    monkeypatch.setattr(ivf, "SPLIT_FROM", 0)
    split = [index.search(q, 10).tolist() for q in queries]
    monkeypatch.setattr(ivf, "SEARCH_THREADS", 1)
    assert [index.search(q, 10).tolist() for q in queries] == split


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, ivf.POOL), extra=st.integers(0, 10), seed=st.integers(0, 1_000))
def test_the_answer_is_exact_when_every_list_is_scanned_and_every_template_ranked(n, extra, seed):
    k = 1 + extra  # n <= POOL: every template is ranked on its vector
    real = ivf.MIN_TRAIN, ivf.PROBE_SHARE
    ivf.MIN_TRAIN, ivf.PROBE_SHARE = 64, {0: 1.0}
    try:
        index = IvfIndex(DIM)
        x, ids = vectors(n, seed), np.arange(5, 5 + n)
        index.add(ids, x)
        q = vectors(1, seed + 1)[0]
        assert index.search(q, k).tolist() == exact_nearest(ids, x, q, k)
    finally:
        ivf.MIN_TRAIN, ivf.PROBE_SHARE = real


@pytest.mark.usefixtures("whole")
def test_saved_and_loaded_it_answers_the_same_and_a_damaged_file_is_refused(tmp_path):
    index = IvfIndex(DIM)
    x = vectors(800, 10)
    index.add(np.arange(1, 801), x)
    index.remove(np.arange(1, 11))
    path = tmp_path / "index.ivf.npz"
    index.save(path)
    loaded = IvfIndex.load(path, DIM, live=790, deleted=np.zeros(0, np.int64))
    assert loaded.lists == index.lists
    for q in vectors(20, 11):
        assert loaded.search(q, 8).tolist() == index.search(q, 8).tolist()
    assert np.array_equal(loaded._rotation, index._rotation)
    assert not np.array_equal(index._rotation, np.eye(DIM, dtype=np.float32))
    loaded.add(np.array([5_000]), x[:1])  # it goes on changing
    assert loaded.search(x[0], 1).tolist() == [5_000]
    with pytest.raises(AnnIndexError, match="other templates"):
        IvfIndex.load(path, DIM, live=791, deleted=np.zeros(0, np.int64))
    path.write_bytes(path.read_bytes()[:1_000])
    with pytest.raises(AnnIndexError, match="cannot be read"):
        IvfIndex.load(path, DIM, live=790, deleted=np.zeros(0, np.int64))


def test_the_rotation_is_orthogonal_and_drawn_the_same_every_time():
    turn = ivf.rotation(80)
    assert turn.dtype == np.float32 and turn.shape == (80, 80)
    np.testing.assert_allclose(turn @ turn.T, np.eye(80), atol=1e-5)  # distances do not change
    assert np.array_equal(turn, ivf.rotation(80))


def test_rotated_codes_rank_principal_axes_better_than_unrotated_ones(monkeypatch):
    # templates on principal axes: the variance falls from the first coordinates to the last. Codes
    # of pairs of coordinates taken as they are spend as many centres on the last pairs as on the
    # first; after the rotation the nearest template is among the kept candidates more often
    monkeypatch.setattr(ivf, "PROBE_SHARE", {0: 1.0})  # every list scanned: only the codes differ
    monkeypatch.setattr(ivf, "POOL", 8)
    rng = np.random.default_rng(14)
    scale = np.geomspace(1.0, 0.01, DIM).astype(np.float32)
    x = (rng.standard_normal((20_000, DIM)) * scale).astype(np.float32)
    queries = x[:300] + (rng.standard_normal((300, DIM)) * scale * 0.3).astype(np.float32)
    ids = np.arange(1, 20_001)

    def found(turn) -> int:
        monkeypatch.setattr(ivf, "rotation", turn)
        index = IvfIndex(DIM)
        index.add(ids, x)
        return sum(index.search(q, 1)[0] == exact_nearest(ids, x, q, 1)[0] for q in queries)

    drawn = ivf.rotation
    unrotated = found(lambda dim, tail=0: np.eye(dim, dtype=np.float32))
    rotated = found(drawn)
    assert rotated >= unrotated + 40, (rotated, unrotated)  # 244 against 160 of 300 when written


def test_the_rotation_leaves_the_tail_as_it_is():
    turn = ivf.rotation(DIM, tail=2)
    np.testing.assert_array_equal(turn[-2:, -2:], np.eye(2))
    np.testing.assert_array_equal(turn[:-2, -2:], 0)
    np.testing.assert_array_equal(turn[-2:, :-2], 0)
    np.testing.assert_allclose(turn @ turn.T, np.eye(DIM), atol=1e-6)
    np.testing.assert_array_equal(ivf.rotation(DIM - 2), ivf.rotation(DIM, tail=2)[:-2, :-2])


def test_a_tail_stays_unrotated_through_its_files_and_new_training(monkeypatch, tmp_path):
    # an owner's penalty keeps codes of its own (ivf.py): at 1M templates, rotated into the other
    # coordinates it was lost in their codes (bench/gallery_scale.py: recall@1 0.957 against 0.997)
    monkeypatch.setattr(ivf, "MIN_TRAIN", 64)
    index = IvfIndex(DIM, tail=2)
    index.add(np.arange(1, 201), vectors(200, 3))
    np.testing.assert_array_equal(index._rotation, ivf.rotation(DIM, tail=2))
    index.save(tmp_path / "i.npz")
    loaded = IvfIndex.load(tmp_path / "i.npz", DIM, 200, np.zeros(0, np.int64))
    assert loaded.tail == 2
    loaded.add(np.arange(201, 1001), vectors(800, 4))  # grown four times: k-means and rotation again
    assert loaded._trained_at == 1000
    np.testing.assert_array_equal(loaded._rotation, ivf.rotation(DIM, tail=2))


def test_faiss_own_removal_from_fast_scan_lists_misplaces_the_codes_left():
    # why IvfIndex.remove marks rows dead instead of calling faiss's remove_ids (faiss-cpu 1.15):
    # after removals and additions, templates still held no longer find themselves with every list
    # scanned. When this starts failing, faiss has fixed it and removal could go back to faiss
    x = vectors(20_000, 12)
    lists = faiss.IndexIVFPQFastScan(faiss.IndexFlatL2(DIM), DIM, 70, DIM // 2, 4)
    lists.by_residual = False
    lists.train(x)
    lists.add_with_ids(x, np.arange(20_000))
    lists.nprobe = 70
    rng = np.random.default_rng(13)
    live = set(range(20_000))
    for _ in range(5):
        gone = rng.choice(sorted(live), 500, replace=False)
        lists.remove_ids(faiss.IDSelectorArray(gone.astype(np.int64)))
        live -= set(gone.tolist())
        back = gone[:250]
        lists.add_with_ids(x[back], back.astype(np.int64))
        live |= set(back.tolist())
    held = np.array(sorted(live))

    def lost(index) -> int:
        _, found = index.search(x[held], 10)
        return int(sum(i not in row for i, row in zip(held, found, strict=True)))

    fresh = faiss.IndexIVFPQFastScan(lists.quantizer, DIM, 70, DIM // 2, 4)  # the same lists, filled once
    fresh.by_residual, fresh.pq, fresh.is_trained, fresh.nprobe = False, lists.pq, True, 70
    fresh.add_with_ids(x[held], held)
    assert lost(fresh) == 0
    assert lost(lists) > 0


def test_an_index_with_a_penalty_ranks_a_larger_pool_of_codes_on_its_vectors(monkeypatch):
    # normalised scores' best person sits further down the codes' order (ivf.TAIL_POOL)
    monkeypatch.setattr(ivf, "MIN_TRAIN", 64)
    monkeypatch.setattr(ivf, "POOL", 8)
    monkeypatch.setattr(ivf, "TAIL_POOL", 24)
    asked: list[int] = []

    class Spy:  # the faiss lists, recording how many candidates each search asks them for
        def __init__(self, inner) -> None:
            object.__setattr__(self, "inner", inner)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __setattr__(self, name, value) -> None:
            setattr(self.inner, name, value)

        def search(self, x, k):
            asked.append(k)
            return self.inner.search(x, k)

    for tail in (0, 2):
        index = IvfIndex(DIM, tail=tail)
        index.add(np.arange(1, 501), vectors(500, 3))
        index._lists = Spy(index._lists)
        assert len(index.search(vectors(1, 4)[0], 1)) == 1
        assert len(index.search(vectors(1, 5)[0], 30)) == 30  # more asked than the pool: as many
    assert asked == [8, 30, 24, 30]
