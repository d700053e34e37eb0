"""Distance metrics and the threshold table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from facegate.decisions import find_threshold
from facegate.decisions.table import (
    ThresholdUnavailableError,
    packaged_table,
    save_threshold,
    threshold_entry,
)
from facegate.distances import METRICS, distance, get_metric, pairwise
from facegate.errors import UnknownNameError


def test_known_values():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 4.0])
    assert distance(a, b, "euclidean") == pytest.approx(5.0)
    assert distance(a, b, "euclidean_l2") == pytest.approx(np.sqrt(2))
    assert distance(a, b, "cosine") == pytest.approx(1.0)
    assert distance(a, 2 * a, "cosine") == pytest.approx(0.0)
    assert distance(a, -a, "euclidean_l2") == pytest.approx(2.0)


def test_unknown_metric_lists_the_choices():
    with pytest.raises(UnknownNameError, match="cosine"):
        distance(np.zeros(2), np.zeros(2), "manhattan")


vectors = arrays(np.float64, st.tuples(st.integers(1, 6), st.just(8)), elements=st.floats(-10, 10))


@settings(max_examples=60, deadline=None)
@given(vectors, vectors, st.sampled_from(["euclidean", "euclidean_l2", "cosine"]))
def test_pairwise_matches_elementwise(a, b, name):
    metric = get_metric(name)
    expected = metric(a[:, None, :], b[None, :, :])
    np.testing.assert_allclose(pairwise(a, b, name), expected, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(vectors, st.sampled_from(["euclidean", "euclidean_l2", "cosine"]))
def test_metric_properties(a, name):
    d = pairwise(a, a, name)
    assert (d >= 0).all()
    np.testing.assert_allclose(d, d.T, atol=1e-9)
    nonzero = np.linalg.norm(a, axis=1) > 1e-6
    np.testing.assert_allclose(np.diag(d)[nonzero], 0.0, atol=1e-6)


def test_float32_gallery_is_not_upcast():
    gallery = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    assert pairwise(gallery[:1], gallery, "euclidean").dtype == np.float32


def test_every_metric_is_registered():
    assert set(METRICS.names()) >= {"euclidean", "euclidean_l2", "cosine"}


def test_packaged_table_covers_the_builtin_models():
    table = packaged_table()
    for model in ("dlib-resnet", "pixels"):
        for metric in ("euclidean", "euclidean_l2", "cosine"):
            entry = table[model][metric]
            assert 0.0 < find_threshold(model, metric) < 2.0
            assert entry["calibrated_on"] == "LFW View 1 training people (pairsDevTrain.txt's people, all their images)"
            assert entry["scores"]["distance"]["curve"]["n_impostor"] == 5_923_194
    assert table["dlib-resnet"]["euclidean"]["default_score"] == "asnorm"
    assert table["pixels"]["euclidean"]["default_score"] == "distance"


def test_threshold_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "t.json"))
    packaged = find_threshold("dlib-resnet", "euclidean")
    assert find_threshold("dlib-resnet", "euclidean", override=0.3) == 0.3
    path = save_threshold("dlib-resnet", "euclidean", 0.42, target_fmr=0.001)
    assert json.loads(path.read_text())["thresholds"]["dlib-resnet"]["euclidean"]["threshold"] == 0.42
    assert find_threshold("dlib-resnet", "euclidean") == 0.42 != packaged
    assert threshold_entry("dlib-resnet", "euclidean")["target_fmr"] == 0.001
    curve = packaged_table()["dlib-resnet"]["cosine"]["scores"]["distance"]["curve"]
    assert find_threshold("dlib-resnet", "cosine") == pytest.approx(
        np.interp(np.log(1e-3), np.log(curve["fmr"]), curve["thresholds"]), abs=1e-3
    )


def test_missing_threshold_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "none.json"))
    with pytest.raises(ThresholdUnavailableError, match="calibrate"):
        find_threshold("no-such-model", "euclidean")


@settings(max_examples=40, deadline=None)
@given(vectors, st.sampled_from(["euclidean", "euclidean_l2", "cosine"]))
def test_prepared_search_matches_pairwise(matrix, name):
    metric = get_metric(name)
    query = matrix[0] * 0.5 + 0.1
    np.testing.assert_allclose(metric.prepare(matrix)(query), metric.pairwise(query[None], matrix)[0], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(vectors, st.sampled_from(["euclidean", "euclidean_l2", "cosine"]))
def test_prepared_search_of_a_stack_matches_pairwise(matrix, name):
    """A stack of queries gets the (n, m) matrix, row for row what each query alone gets."""
    metric = get_metric(name)
    queries = np.stack([matrix[0] * 0.5 + 0.1, matrix[-1] - 0.2, matrix[0]])
    prepared = metric.prepare(matrix)
    stacked = prepared(queries)
    assert stacked.shape == (3, len(matrix))
    np.testing.assert_allclose(stacked, metric.pairwise(queries, matrix), atol=1e-6)
    np.testing.assert_allclose(stacked, np.stack([prepared(q) for q in queries]), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(vectors, st.sampled_from(["euclidean", "euclidean_l2", "cosine"]), st.data())
def test_prepared_distances_at_some_rows_match_the_metric(matrix, name, data):
    """``at`` gives the distances to the rows asked for, in their order (repeats too), as the
    metric computes them pair by pair, in float64 and float32 rows alike."""
    metric = get_metric(name)
    query = matrix[0] * 0.5 + 0.1
    rows = np.array(data.draw(st.lists(st.integers(0, len(matrix) - 1), max_size=10)), int)
    for dtype, tolerance in ((np.float64, 1e-9), (np.float32, 1e-4)):
        rows_as = matrix.astype(dtype)
        got = metric.prepare(rows_as).at(query, rows)
        assert got.shape == rows.shape
        np.testing.assert_allclose(got, metric(query, matrix[rows]), atol=tolerance, rtol=tolerance)
