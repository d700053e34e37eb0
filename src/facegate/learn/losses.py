"""Metric-learning losses, each a functional form plus a small composable ``nn.Module``.

Kept separate from the miners (``facegate.learn.miners``) that pick which triplets or pairs to
use, as pytorch-metric-learning does: a loss takes already-formed examples.

* :func:`triplet_loss` – FaceNet (Schroff et al. 2015), eq. 1 exactly:
  ``J = Σ_i max(‖f(A_i) − f(P_i)‖² − ‖f(A_i) − f(N_i)‖² + α, 0)`` with α = 0.2, the
  squared distance summed over the embedding axis of each example, the hinge summed over
  examples (``reduction="sum"``, the default; ``"mean"`` and ``"none"`` are offered).
* :func:`contrastive_loss` – Hadsell, Chopra & LeCun 2006:
  ``y·d² + (1−y)·max(m − d, 0)²`` (``d`` the Euclidean distance, ``y`` = 1 for same).
* :class:`SiameseBCELoss` / :func:`siamese_bce_loss` – Koch, Zemel & Salakhutdinov 2015:
  ``p = σ(w·|f(x₁) − f(x₂)| + b)`` (the head, :class:`facegate.learn.nets.omniglot.SiameseHead`)
  and binary cross-entropy against same/different.
* :func:`prototypical_loss` – Snell et al. 2017: softmax over negative squared distances
  of queries to class means; :func:`leave_one_out_prototypical_loss` on a P×K batch
  where every image is a query against prototypes that leave it out.
* :class:`CosFaceLoss` – Wang et al. 2018: a normalised-softmax classifier with an
  additive cosine margin, ``s·(cos θ − m·[true class])``.

Requires torch (the ``[train]`` extra).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from facegate.learn.nets.omniglot import SiameseHead

Reduction = Literal["sum", "mean", "none"]

__all__ = [
    "ContrastiveLoss",
    "CosFaceLoss",
    "SiameseBCELoss",
    "TripletLoss",
    "contrastive_loss",
    "leave_one_out_prototypical_loss",
    "prototypical_loss",
    "siamese_bce_loss",
    "squared_distances",
    "triplet_loss",
]


def _reduce(values: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean() if values.numel() else values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"unknown reduction {reduction!r}; expected 'sum', 'mean' or 'none'")


def squared_distances(embeddings: Tensor) -> Tensor:
    """All pairwise squared Euclidean distances of ``(n, d)`` embeddings, ``(n, n)``, ≥ 0."""
    sq = (embeddings * embeddings).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T
    return d2.clamp_min(0.0)


def triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 0.2,
    reduction: Reduction = "sum",
) -> Tensor:
    """FaceNet triplet loss: ``Σ_i max(‖a_i − p_i‖² − ‖a_i − n_i‖² + margin, 0)``.

    ``anchor``, ``positive`` and ``negative`` are ``(n, d)`` (or ``(d,)`` for a single
    triplet). The squared distance is summed over the embedding axis of each example;
    the hinge is summed over examples by default, as in the paper. An empty batch gives 0
    (still attached to the graph of the inputs).
    """
    if anchor.shape != positive.shape or anchor.shape != negative.shape:
        raise ValueError(
            f"anchor, positive and negative must have the same shape, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    d_ap = (anchor - positive).pow(2).sum(dim=-1)
    d_an = (anchor - negative).pow(2).sum(dim=-1)
    return _reduce(F.relu(d_ap - d_an + margin), reduction)


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss` (FaceNet, α = 0.2, summed over examples)."""

    def __init__(self, margin: float = 0.2, reduction: Reduction = "sum") -> None:
        super().__init__()
        self.margin = float(margin)
        self.reduction: Reduction = reduction

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return triplet_loss(anchor, positive, negative, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


def contrastive_loss(
    x1: Tensor,
    x2: Tensor,
    same: Tensor,
    margin: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Contrastive loss: ``same·d² + (1 − same)·max(margin − d, 0)²`` with ``d = ‖x1 − x2‖``.

    ``same`` is 1 (or True) for pairs of the same class, 0 otherwise.
    """
    same = same.to(x1.dtype)
    d2 = (x1 - x2).pow(2).sum(dim=-1)
    d = (d2 + 1e-12).sqrt()
    per_pair = same * d2 + (1.0 - same) * F.relu(margin - d).pow(2)
    return _reduce(per_pair, reduction)


class ContrastiveLoss(nn.Module):
    """Module form of :func:`contrastive_loss`."""

    def __init__(self, margin: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.margin = float(margin)
        self.reduction: Reduction = reduction

    def forward(self, x1: Tensor, x2: Tensor, same: Tensor) -> Tensor:
        return contrastive_loss(x1, x2, same, self.margin, self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


def siamese_bce_loss(logits: Tensor, same: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Binary cross-entropy of Siamese-head logits against same (1) / different (0)."""
    per_pair = F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype), reduction="none")
    return _reduce(per_pair, reduction)


class SiameseBCELoss(nn.Module):
    """A :class:`SiameseHead` and binary cross-entropy: ``loss(x1, x2, same)``.

    The head's weights are trainable parameters of this module; optimise them together
    with the embedding network.
    """

    def __init__(self, dim: int, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.head = SiameseHead(dim)
        self.reduction: Reduction = reduction

    def forward(self, x1: Tensor, x2: Tensor, same: Tensor) -> Tensor:
        return siamese_bce_loss(self.head(x1, x2), same, self.reduction)

    @torch.no_grad()
    def probability(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Predicted probability that each pair is of the same class."""
        return torch.sigmoid(self.head(x1, x2))


def prototypical_loss(query: Tensor, prototypes: Tensor, target: Tensor) -> Tensor:
    """Snell et al.: cross-entropy of ``−‖q − c_k‖²`` over the classes' prototypes.

    ``query`` ``(q, d)``, ``prototypes`` ``(w, d)`` (the class means of the support),
    ``target`` ``(q,)`` the index of each query's class.
    """
    return F.cross_entropy(-torch.cdist(query, prototypes).pow(2), target)


def leave_one_out_prototypical_loss(embeddings: Tensor, per_class: int) -> Tensor:
    """The prototypical loss on a class-major P×K batch ``(p·k, d)`` where every image is a
    query: its own class's prototype leaves it out (K = 2: 1-shot), the other classes'
    use all K images."""
    k = per_class
    if k < 2:
        raise ValueError("the leave-one-out prototypical loss needs per_class >= 2")
    grouped = embeddings.view(-1, k, embeddings.shape[-1])
    p = grouped.shape[0]
    sums = grouped.sum(1)
    d_all = torch.cdist(embeddings, sums / k).pow(2)  # (p*k, p)
    own = ((sums[:, None, :] - grouped) / (k - 1) - grouped).pow(2).sum(-1).reshape(-1)
    target = torch.arange(p, device=embeddings.device).repeat_interleave(k)
    return F.cross_entropy(-d_all.scatter(1, target[:, None], own[:, None]), target)


class CosFaceLoss(nn.Module):
    """CosFace: normalised class weights (trainable); ``loss(z, labels)`` is the cross-entropy
    of ``s·(cos θ − m·[true class])``."""

    def __init__(self, dim: int, n_classes: int, scale: float = 30.0, margin: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        cos = F.normalize(z, dim=1) @ F.normalize(self.weight, dim=1).T
        cos = cos - self.margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(self.scale * cos, labels)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, margin={self.margin}"
