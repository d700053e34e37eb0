"""Online miners pick the right triplets from constructed batches."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from facegate.learn.miners import batch_all_triplets, batch_hard_triplets, semi_hard_triplets  # noqa: E402


def _as_set(triplets) -> set[tuple[int, int, int]]:
    a, p, n = triplets
    assert a.dtype == p.dtype == n.dtype == torch.long
    return set(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))


# One-dimensional embeddings, so squared distances are easy to read:
# class 0 at 0.0 and 0.3 ; class 1 at 0.5 and 2.0 ; class 2 at 0.15
POINTS = torch.tensor([[0.0], [0.3], [0.5], [2.0], [0.15]])
LABELS = torch.tensor([0, 0, 1, 1, 2])


def _d2(i: int, j: int) -> float:
    return float((POINTS[i, 0] - POINTS[j, 0]) ** 2)


def test_batch_all_lists_every_valid_triplet() -> None:
    got = _as_set(batch_all_triplets(POINTS, LABELS))
    expected = {
        (a, p, n)
        for a, p, n in itertools.product(range(5), repeat=3)
        if a != p and LABELS[a] == LABELS[p] and LABELS[a] != LABELS[n]
    }
    assert got == expected
    assert len(got) == 2 * 3 + 2 * 3  # two anchors per class pair, three negatives each


def test_batch_all_only_active() -> None:
    got = _as_set(batch_all_triplets(POINTS, LABELS, margin=0.2, only_active=True))
    expected = {(a, p, n) for a, p, n in _as_set(batch_all_triplets(POINTS, LABELS)) if _d2(a, p) - _d2(a, n) + 0.2 > 0}
    assert got == expected
    assert (3, 2, 0) not in got  # d_ap = 2.25, d_an = 4 -> inactive


def test_batch_hard_exact() -> None:
    got = _as_set(batch_hard_triplets(POINTS, LABELS))
    # anchor 4 (class 2) has no positive and is left out; anchors 0 and 1 have the
    # class-2 point (0.15) nearest; anchors 2 (0.5) and 3 (2.0) have 0.3 (index 1) nearest
    assert got == {(0, 1, 4), (1, 0, 4), (2, 3, 1), (3, 2, 1)}


def test_semi_hard_constructed_batch() -> None:
    # anchor 0 (0.0), positive 1: d_ap = 0.09; negatives d²: 0.25 (2), 4 (3), 0.0225 (4)
    #   -> window (0.09, 0.29) holds only index 2
    # anchor 1 (0.3), positive 0: d_ap = 0.09; negatives 0.04, 2.89, 0.0225 -> none
    # anchor 2 (0.5), positive 3: d_ap = 2.25; negatives 0.25, 0.04, 0.1225 -> none
    # anchor 3 (2.0), positive 2: d_ap = 2.25; negatives 4.0, 2.89, 3.4225 -> none
    got = _as_set(semi_hard_triplets(POINTS, LABELS, margin=0.2))
    assert got == {(0, 1, 2)}
    # with a margin of 1.0, anchor 3's window (2.25, 3.25) holds index 1 (2.89) only;
    # anchor 0's window (0.09, 1.09) still holds only index 2
    got = _as_set(semi_hard_triplets(POINTS, LABELS, margin=1.0))
    assert got == {(0, 1, 2), (3, 2, 1)}


def test_semi_hard_prefers_nearest_of_semi_hard() -> None:
    pts = torch.tensor([[0.0], [1.0], [1.05], [1.1], [-1.08]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    # anchor 0, positive 1: d_ap = 1; negatives d² 1.1025 (2), 1.21 (3), 1.1664 (4): (1, 1.2) holds 2 and 4
    a, p, n = semi_hard_triplets(pts, labels, margin=0.2)
    pairs = dict(zip(zip(a.tolist(), p.tolist(), strict=True), n.tolist(), strict=True))
    assert pairs[(0, 1)] == 2
    a, p, n = semi_hard_triplets(pts, labels, margin=0.2, choice="random", generator=torch.Generator().manual_seed(0))
    pairs = dict(zip(zip(a.tolist(), p.tolist(), strict=True), n.tolist(), strict=True))
    assert pairs[(0, 1)] in {2, 4}


def test_no_positives_gives_empty() -> None:
    e = torch.randn(4, 3)
    labels = torch.arange(4)
    for miner in (batch_all_triplets, batch_hard_triplets, semi_hard_triplets):
        a, p, n = miner(e, labels)
        assert a.numel() == p.numel() == n.numel() == 0


def test_bad_shapes() -> None:
    with pytest.raises(ValueError):
        semi_hard_triplets(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 12),
    classes=st.integers(1, 4),
    margin=st.floats(0.01, 3.0),
    seed=st.integers(0, 10_000),
)
def test_miners_properties(n: int, classes: int, margin: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)

    semi = _as_set(semi_hard_triplets(emb, labels, margin=margin))
    for a, p, m in semi:
        assert a != p and labels[a] == labels[p] and labels[a] != labels[m]
        assert d[a, p] < d[a, m] + 1e-9 and d[a, m] < d[a, p] + margin + 1e-9
    # every anchor-positive pair that has a semi-hard negative is used exactly once
    expected_pairs = {
        (a, p)
        for a in range(n)
        for p in range(n)
        if a != p
        and labels[a] == labels[p]
        and any(labels[m] != labels[a] and d[a, p] < d[a, m] < d[a, p] + margin for m in range(n))
    }
    assert {(a, p) for a, p, _ in semi} == expected_pairs
    assert len(semi) == len(expected_pairs)

    hard = _as_set(batch_hard_triplets(emb, labels))
    for a, p, m in hard:
        assert d[a, p] == max(d[a, q] for q in range(n) if q != a and labels[q] == labels[a])
        assert d[a, m] == min(d[a, q] for q in range(n) if labels[q] != labels[a])

    everything = _as_set(batch_all_triplets(emb, labels))
    assert semi <= everything and hard <= everything
