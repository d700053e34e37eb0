"""The losses: FaceNet triplet loss exactly, contrastive loss, Siamese BCE."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from facegate.learn.losses import (  # noqa: E402
    ContrastiveLoss,
    SiameseBCELoss,
    TripletLoss,
    contrastive_loss,
    siamese_bce_loss,
    squared_distances,
    triplet_loss,
)


def _reference_triplet(a, p, n, margin):
    total = 0.0
    for i in range(a.shape[0]):
        d_ap = sum((float(a[i, k]) - float(p[i, k])) ** 2 for k in range(a.shape[1]))
        d_an = sum((float(a[i, k]) - float(n[i, k])) ** 2 for k in range(a.shape[1]))
        total += max(d_ap - d_an + margin, 0.0)
    return total


def test_triplet_loss_hand_computed() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[0.3, 0.4], [1.0, 0.0], [0.0, 0.0]])  # d_ap² = 0.25, 0, 0
    n = torch.tensor([[0.0, 0.6], [1.0, 0.1], [0.0, 1.0]])  # d_an² = 0.36, 0.01, 1
    # 0.25 - 0.36 + 0.2 = 0.09 ; 0 - 0.01 + 0.2 = 0.19 ; 0 - 1 + 0.2 < 0 -> 0
    assert triplet_loss(a, p, n).item() == pytest.approx(0.28, abs=1e-6)
    assert TripletLoss()(a, p, n).item() == pytest.approx(0.28, abs=1e-6)
    assert TripletLoss(margin=0.0)(a, p, n).item() == pytest.approx(0.0, abs=1e-6)
    assert triplet_loss(a, p, n, reduction="mean").item() == pytest.approx(0.28 / 3, abs=1e-6)
    per = triplet_loss(a, p, n, reduction="none")
    assert per.tolist() == pytest.approx([0.09, 0.19, 0.0], abs=1e-6)


def test_triplet_loss_default_margin_is_facenet_alpha() -> None:
    z = torch.zeros(5, 8)
    # identical anchors/positives/negatives: each term is exactly alpha = 0.2, summed
    assert triplet_loss(z, z, z).item() == pytest.approx(5 * 0.2)
    assert TripletLoss().margin == 0.2


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 5),
    margin=st.floats(0.0, 2.0),
    seed=st.integers(0, 10_000),
)
def test_triplet_loss_matches_slow_loop(n: int, d: int, margin: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a, p, ng = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
    got = triplet_loss(a, p, ng, margin=margin).item()
    assert got == pytest.approx(_reference_triplet(a, p, ng, margin), rel=1e-9, abs=1e-9)


def test_triplet_loss_gradient_pulls_positive_pushes_negative() -> None:
    a = torch.zeros(1, 2, requires_grad=True)
    p = torch.tensor([[1.0, 0.0]], requires_grad=True)
    n = torch.tensor([[0.0, 0.5]], requires_grad=True)
    triplet_loss(a, p, n).backward()
    assert p.grad[0, 0] > 0  # descending moves p toward a (x decreases)
    assert n.grad[0, 1] < 0  # descending moves n away from a (y increases)


def test_triplet_loss_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        triplet_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3))


def test_squared_distances() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    d = squared_distances(x)
    assert torch.allclose(d, torch.tensor([[0.0, 25, 1], [25, 0, 20], [1, 20, 0]]), atol=1e-4)


def test_contrastive_loss_hand_computed() -> None:
    x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    x2 = torch.tensor([[0.6, 0.8], [0.3, 0.4], [3.0, 0.0]])  # d = 1, 0.5, 3
    same = torch.tensor([1, 0, 0])
    # same: d² = 1 ; different d=0.5, m=1: 0.25 ; different d=3: 0
    assert contrastive_loss(x1, x2, same, margin=1.0, reduction="sum").item() == pytest.approx(1.25, abs=1e-5)
    assert ContrastiveLoss(margin=1.0)(x1, x2, same).item() == pytest.approx(1.25 / 3, abs=1e-5)


def test_siamese_bce() -> None:
    loss = SiameseBCELoss(dim=3)
    with torch.no_grad():
        loss.head.fc.weight.fill_(-1.0)
        loss.head.fc.bias.fill_(0.5)
    x1 = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    x2 = torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 1.0]])
    # logits: 0.5 (same pair, L1 = 0) and 0.5 - 3 = -2.5 (different)
    same = torch.tensor([1.0, 0.0])
    expected = (-math.log(1 / (1 + math.exp(-0.5))) - math.log(1 - 1 / (1 + math.exp(2.5)))) / 2
    assert loss(x1, x2, same).item() == pytest.approx(expected, rel=1e-5)
    probs = loss.probability(x1, x2)
    assert probs[0] > 0.5 > probs[1]
    logits = loss.head(x1, x2)
    assert siamese_bce_loss(logits, same, reduction="sum").item() == pytest.approx(2 * expected, rel=1e-5)
