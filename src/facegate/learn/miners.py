"""Online triplet miners: pick ``(anchor, positive, negative)`` indices inside a batch.

Every miner takes ``(n, d)`` embeddings and ``(n,)`` integer labels and returns three
``LongTensor`` index vectors ``(a_idx, p_idx, n_idx)`` of equal length, such that
``labels[a] == labels[p]``, ``a != p`` and ``labels[a] != labels[n]``. Distances are
squared Euclidean, as in the FaceNet triplet loss (``facegate.learn.losses.triplet_loss``);
mining runs without gradient. Feed the result to the loss::

    a, p, n = semi_hard_triplets(emb, labels, margin=0.2)
    loss = triplet_loss(emb[a], emb[p], emb[n], margin=0.2)

* :func:`batch_all_triplets` – every valid triplet (optionally only those with a
  non-zero loss), Hermans, Beyer & Leibe 2017.
* :func:`batch_hard_triplets` – per anchor, the farthest positive and the nearest
  negative (Hermans et al.).
* :func:`semi_hard_triplets` – FaceNet: for every anchor-positive pair, a negative
  farther than the positive but within the margin, ``d(a,p) < d(a,n) < d(a,p) + α``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from facegate.learn.losses import squared_distances

__all__ = ["batch_all_triplets", "batch_hard_triplets", "semi_hard_triplets"]

Triplets = tuple[Tensor, Tensor, Tensor]


def _check(embeddings: Tensor, labels: Tensor) -> None:
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {tuple(embeddings.shape)}")
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels must be (n,) matching embeddings, got {tuple(labels.shape)} for {embeddings.shape[0]} embeddings"
        )


def _masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``positive[i, j]``: same label and i != j; ``negative[i, j]``: different labels."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _empty(device: torch.device) -> Triplets:
    e = torch.empty(0, dtype=torch.long, device=device)
    return e, e.clone(), e.clone()


@torch.no_grad()
def batch_all_triplets(embeddings: Tensor, labels: Tensor, margin: float = 0.2, only_active: bool = False) -> Triplets:
    """All valid triplets of the batch.

    With ``only_active=True`` keep only those with a non-zero loss,
    ``d(a,p) − d(a,n) + margin > 0``.
    """
    _check(embeddings, labels)
    positive, negative = _masks(labels)
    valid = positive[:, :, None] & negative[:, None, :]
    if only_active:
        d = squared_distances(embeddings.detach().float())
        valid &= (d[:, :, None] - d[:, None, :] + margin) > 0
    a, p, n = valid.nonzero(as_tuple=True)
    return a, p, n


@torch.no_grad()
def batch_hard_triplets(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Triplets:
    """For each anchor the hardest positive (farthest) and hardest negative (nearest).

    Anchors with no positive or no negative in the batch are left out. ``margin`` is
    accepted for a uniform miner signature and not used.
    """
    del margin
    _check(embeddings, labels)
    positive, negative = _masks(labels)
    has = positive.any(dim=1) & negative.any(dim=1)
    if not bool(has.any()):
        return _empty(embeddings.device)
    d = squared_distances(embeddings.detach().float())
    p_idx = d.masked_fill(~positive, float("-inf")).argmax(dim=1)
    n_idx = d.masked_fill(~negative, float("inf")).argmin(dim=1)
    a_idx = has.nonzero(as_tuple=True)[0]
    return a_idx, p_idx[a_idx], n_idx[a_idx]


@torch.no_grad()
def semi_hard_triplets(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    choice: Literal["hardest", "random"] = "hardest",
    generator: torch.Generator | None = None,
) -> Triplets:
    """FaceNet semi-hard triplets: ``d(a,p) < d(a,n) < d(a,p) + margin``.

    Every anchor-positive pair of the batch is used (FaceNet: "we use all anchor-positive
    pairs"); its negative is drawn among the semi-hard ones – the nearest of them with
    ``choice="hardest"`` (deterministic, as TensorFlow Addons does) or a uniformly random
    one with ``choice="random"`` (as in the paper). Pairs with no semi-hard negative
    are left out.
    """
    _check(embeddings, labels)
    positive, negative = _masks(labels)
    d = squared_distances(embeddings.detach().float())
    a, p = positive.nonzero(as_tuple=True)
    if a.numel() == 0:
        return _empty(embeddings.device)
    d_ap = d[a, p][:, None]  # (m, 1)
    d_an = d[a]  # (m, n)
    semi = negative[a] & (d_an > d_ap) & (d_an < d_ap + margin)
    ok = semi.any(dim=1)
    if not bool(ok.any()):
        return _empty(embeddings.device)
    a, p, semi, d_an = a[ok], p[ok], semi[ok], d_an[ok]
    if choice == "hardest":
        n = d_an.masked_fill(~semi, float("inf")).argmin(dim=1)
    elif choice == "random":
        weights = semi.float()
        n = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    else:
        raise ValueError(f"unknown choice {choice!r}; expected 'hardest' or 'random'")
    return a, p, n
