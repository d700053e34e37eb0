"""The order a bulk copy writes templates in: near ones together (gallery/locality.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from facegate.gallery import locality
from facegate.gallery.locality import locality_order


def blobs(n_blobs: int, each: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n_blobs`` tight groups far apart, their rows shuffled together: (matrix, each row's group)."""
    rng = np.random.default_rng(3)
    centres = np.eye(n_blobs, dim) * 100
    group = rng.permutation(np.repeat(np.arange(n_blobs), each))
    return (centres[group] + rng.normal(size=(len(group), dim))).astype(np.float32), group


def test_each_group_of_near_templates_is_written_together_in_its_given_order():
    matrix, group = blobs(4, 800)  # 3,200 rows: split into 4 (LEAF 1,000), each blob one part
    order = locality_order(matrix)
    assert sorted(order.tolist()) == list(range(len(matrix)))
    assert len(np.flatnonzero(np.diff(group[order]) != 0)) == 3  # each blob is one run
    for g in range(4):
        rows = order[group[order] == g]
        assert rows.tolist() == sorted(rows.tolist())


def test_a_group_is_split_again_until_its_parts_are_small(monkeypatch):
    monkeypatch.setattr(locality, "LEAF", 100)
    monkeypatch.setattr(locality, "BRANCH", 2)
    matrix, group = blobs(4, 100)  # 400 rows, two at a time: 2 parts of 200, each split into 2 of 100
    order = locality_order(matrix)
    assert len(np.flatnonzero(np.diff(group[order]) != 0)) == 3


def test_identical_templates_keep_their_order():
    assert locality_order(np.zeros((2_500, 4), np.float32)).tolist() == list(range(2_500))


def test_a_small_gallery_keeps_its_order():
    matrix, _ = blobs(2, 400)
    assert locality_order(matrix).tolist() == list(range(800))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(0, 60), st.integers(1, 4)),
        elements=st.floats(-10, 10, width=32, allow_nan=False),
    )
)
def test_the_order_is_a_permutation_and_the_same_each_time(monkeypatch, matrix):
    monkeypatch.setattr(locality, "LEAF", 5)  # the same for every example
    monkeypatch.setattr(locality, "BRANCH", 3)
    order = locality_order(matrix)
    assert sorted(order.tolist()) == list(range(len(matrix)))
    assert order.tolist() == locality_order(matrix).tolist()
