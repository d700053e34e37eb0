"""The graph's projection: principal axes estimated from the gallery, kept with the graph."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegate.gallery import Gallery
from facegate.gallery import projection as projection_module
from facegate.gallery.ann import AnnSearch, header_path
from facegate.gallery.projection import MIN_TEMPLATES, VARIANCE_KEPT, Projection

DIM = 128


def low_rank(n: int, rank: int, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """``n`` rows about a centre, spread along ``rank`` random orthonormal directions of 128."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, rank)))
    rows = 0.4 + rng.standard_normal((n, rank)) @ basis.T * 0.1
    return (rows + noise * rng.standard_normal((n, DIM))).astype(np.float32)


def test_the_axes_kept_are_the_fewest_holding_the_variance_rounded_up_to_16():
    p = Projection.fit(low_rank(MIN_TEMPLATES, rank=20))
    assert p is not None and p.dim == 32  # 20 directions carry everything; 32 is the next multiple of 16
    assert p.axes.shape == (DIM, 32) and p.centre.shape == (DIM,)
    np.testing.assert_allclose(p.axes.T @ p.axes, np.eye(32), atol=1e-5)  # orthonormal


def test_distances_in_the_subspace_survive_the_projection():
    rows = low_rank(MIN_TEMPLATES, rank=20, seed=1)
    p = Projection.fit(rows)
    a, b = rows[:200], rows[200:400]
    full = np.linalg.norm(a - b, axis=1)
    np.testing.assert_allclose(np.linalg.norm(p(a) - p(b), axis=1), full, rtol=1e-4)


def test_no_projection_for_a_small_gallery_or_when_every_axis_counts():
    assert Projection.fit(low_rank(MIN_TEMPLATES - 1, rank=20)) is None
    isotropic = np.random.default_rng(2).standard_normal((MIN_TEMPLATES, DIM)).astype(np.float32)
    assert Projection.fit(isotropic) is None  # all but 0.01% of it needs more than 112 axes: all 128 are kept
    # noise carrying 0.3% of the variance is kept: only what carries (almost) nothing is dropped
    assert Projection.fit(low_rank(MIN_TEMPLATES, rank=20, noise=0.005)) is None


def test_a_large_gallery_estimates_its_axes_on_a_sample(monkeypatch):
    monkeypatch.setattr(projection_module, "SAMPLE", 12_000)
    seen = []
    real_cov = np.cov

    def spy(m, **kw):
        seen.append(len(m))
        return real_cov(m, **kw)

    monkeypatch.setattr(np, "cov", spy)
    assert Projection.fit(low_rank(30_000, rank=20)).dim == 32
    assert seen == [12_000]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rank=st.integers(1, 100),
    noise=st.floats(0, 0.05),
    variance=st.floats(0.3, VARIANCE_KEPT),
)
def test_a_projected_distance_never_exceeds_the_full_one(seed, rank, noise, variance):
    rows = low_rank(MIN_TEMPLATES, rank=rank, seed=seed, noise=noise)
    p = Projection.fit(rows, variance=variance)
    if p is None:  # all axes needed: the graph indexes the full templates
        return
    a, b = rows[:300], rows[300:600]
    assert np.all(np.linalg.norm(p(a) - p(b), axis=1) <= np.linalg.norm(a - b, axis=1) * (1 + 1e-5) + 1e-6)


def test_arrays_round_trip_and_mismatched_arrays_are_refused():
    p = Projection.fit(low_rank(MIN_TEMPLATES, rank=20))
    back = Projection.from_arrays(p.arrays())
    np.testing.assert_array_equal(back.axes, p.axes)
    np.testing.assert_array_equal(back.centre, p.centre)
    assert Projection.from_arrays({}) is None  # files written before projections: the full templates
    with pytest.raises(ValueError, match="do not fit"):
        Projection.from_arrays({"projection_centre": p.centre[:5], "projection_axes": p.axes})


# -- in the graph ------------------------------------------------------------------------
def _gallery_arrays(n: int, rank: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    matrix = low_rank(n, rank=rank, seed=5, noise=1e-4)
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ids, ids.copy(), matrix  # one template a person


def test_a_graph_built_from_a_large_store_indexes_projected_templates_and_keeps_the_axes(tmp_path):
    path = str(tmp_path / "g.sqlite")
    ids, owners, matrix = _gallery_arrays(MIN_TEMPLATES)
    built = AnnSearch.open(path, "gallery-1", 1, ids, owners, matrix, normalise=False)
    assert built.origin == "built" and built.projection is not None
    assert (built.graph_dim, built.graph.dim) == (32, 32)
    assert json.loads(header_path(path).read_text())["graph_dim"] == 32
    assert [int(built.candidates(matrix[i], 1)[0]) for i in (0, 4321, 9999)] == [1, 4322, 10000]
    loaded = AnnSearch.open(path, "gallery-1", 1, ids, owners, matrix, normalise=False)
    assert loaded.origin == "loaded"
    np.testing.assert_array_equal(loaded.projection.axes, built.projection.axes)
    np.testing.assert_array_equal(loaded.projection.centre, built.projection.centre)
    # a later enrolment is projected on the saved axes, and found
    newcomer = low_rank(1, rank=20, seed=6)
    loaded.add([10_001], 10_001, newcomer, 2)
    assert int(loaded.candidates(newcomer[0], 1)[0]) == 10_001


def test_a_graph_saved_without_a_projection_still_loads_and_searches_full_templates(tmp_path, monkeypatch):
    path = str(tmp_path / "g.sqlite")
    ids, owners, matrix = _gallery_arrays(MIN_TEMPLATES)
    monkeypatch.setattr(projection_module, "MIN_TEMPLATES", 10**9)  # as graphs were saved before projections
    AnnSearch.open(path, "gallery-1", 1, ids, owners, matrix, normalise=False)
    monkeypatch.undo()
    loaded = AnnSearch.open(path, "gallery-1", 1, ids, owners, matrix, normalise=False)
    assert (loaded.origin, loaded.projection, loaded.graph_dim) == ("loaded", None, DIM)
    assert int(loaded.candidates(matrix[77], 1)[0]) == 78


def test_a_gallery_on_a_projected_graph_answers_as_exact_search_does(tmp_path):
    rng = np.random.default_rng(7)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, 40)))  # faces that vary along 40 of the 128 directions
    centres = rng.standard_normal((6_000, 40)) * 0.06  # people about 0.54 apart
    photos = {f"p{i}": (0.3 + (c + rng.standard_normal((2, 40)) * 0.012) @ basis.T) for i, c in enumerate(centres)}
    asked = range(0, 6_000, 150)
    probes = [(0.3 + (centres[i] + rng.standard_normal(40) * 0.012) @ basis.T).astype(np.float32) for i in asked]
    path = tmp_path / "g.sqlite"
    with Gallery(path, model_name="dlib-resnet", index="exact", normalise=False) as g:
        g.add_embeddings_bulk({name: v.astype(np.float32) for name, v in photos.items()})  # a person's: ~0.1 apart
        exact = [g.identify_embedding(p, top_k=1) for p in probes]
    with Gallery(path, index="ann", normalise=False) as g:  # its graph is built from the 12,000 templates
        assert g.ann.graph_dim == 48  # 40 directions, rounded up to 16
        approx = [g.identify_embedding(p, top_k=1) for p in probes]
    assert [r.identity for r in approx] == [r.identity for r in exact] == [f"p{i}" for i in asked]
    assert [r.distance for r in approx] == [r.distance for r in exact]  # exact distances, from the full templates
