"""Evaluation figures as PNG files, drawn off-screen (Agg; no display, no pyplot state).

- :func:`plot_roc`: ROC curves of several systems on one chart, linear and log-FMR;
- :func:`plot_distance_matrix`: distances between photos of several people (the
  "Happy House" figure), with the decision threshold marked;
- :func:`plot_pair_sheet`: photo pairs with their distance and decision, hardest
  errors first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from facegate.distances import get_metric
from facegate.evaluate.metrics import Roc


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Draw ``fig`` off-screen (Agg) into the PNG file ``path``, making its folder."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out


def plot_roc(curves: Sequence[tuple[str, Roc]], path: str | Path, title: str = "ROC") -> Path:
    """One chart with every system's ROC: TPR (1 - FNMR) against FMR, linear and log scale."""
    fig = Figure(figsize=(11, 4.6))
    lin, log = fig.subplots(1, 2)
    for label, roc in curves:
        lin.plot(roc.fpr, roc.tpr, label=label, lw=1.5)
        positive = roc.fpr > 0
        log.plot(roc.fpr[positive], roc.tpr[positive], label=label, lw=1.5)
    lin.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    lin.set(xlabel="false match rate (FMR)", ylabel="true match rate (1 - FNMR)", xlim=(0, 1), ylim=(0, 1.01))
    log.set_xscale("log")
    log.set(xlabel="false match rate (FMR, log)", ylabel="true match rate (1 - FNMR)", ylim=(0, 1.01))
    for ax in (lin, log):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_distance_matrix(
    vectors: np.ndarray,
    labels: Sequence[str],
    metric: str,
    path: str | Path,
    threshold: float | None = None,
    title: str = "distances between photos",
) -> Path:
    """Heat-map of the distances between photos, grouped by person.

    Cells are annotated when the matrix is small; with ``threshold``, cells at or
    under it (a match) are outlined.
    """
    v = np.asarray(vectors, dtype=np.float64)
    ok = np.isfinite(v).all(axis=1)
    v, names = v[ok], [lab for lab, keep in zip(labels, ok, strict=True) if keep]
    order = np.argsort(np.asarray(names), kind="stable")
    v, names = v[order], [names[i] for i in order]
    d = get_metric(metric).pairwise(v, v) if len(v) else np.zeros((0, 0))
    n = len(names)
    size = min(max(4.0, 0.45 * n + 2), 16)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    im = ax.imshow(d, cmap="viridis_r")
    fig.colorbar(im, ax=ax, label=f"{metric} distance")
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    if n <= 16:
        middle = (float(d.min()) + float(d.max())) / 2 if n else 0.0
        for i in range(n):
            for j in range(n):
                colour = "k" if d[i, j] < middle else "w"
                ax.text(j, i, f"{d[i, j]:.2f}", ha="center", va="center", fontsize=6, color=colour)
    if threshold is not None and n <= 60:
        ii, jj = np.nonzero(d <= threshold)
        for i, j in zip(ii, jj, strict=True):
            if i != j:
                ax.add_patch(_rect(j, i))
    ax.set_title(title + (f" (outlined: ≤ {threshold:.3f}, a match)" if threshold is not None else ""))
    return save_figure(fig, path)


def _rect(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="red", lw=0.8)


@dataclass(frozen=True)
class SheetPair:
    """One pair to show: the two image files, the truth, the distance (inf if failed)."""

    first: str
    second: str
    same: bool
    distance: float


def hardest_pairs(pairs: Sequence[SheetPair], threshold: float, n: int = 12) -> list[SheetPair]:
    """Errors first (false non-matches by largest distance, false matches by smallest), then correct ones."""

    def wrong(p: SheetPair) -> bool:
        return (p.distance <= threshold) != p.same or not np.isfinite(p.distance)

    errors = sorted((p for p in pairs if wrong(p)), key=lambda p: -abs(_finite(p.distance) - threshold))
    right = sorted((p for p in pairs if not wrong(p)), key=lambda p: abs(p.distance - threshold))
    return (errors + right)[:n]


def _finite(x: float) -> float:
    return x if np.isfinite(x) else 1e9


def plot_pair_sheet(
    pairs: Sequence[SheetPair], threshold: float, path: str | Path, title: str = "pairs", columns: int = 3
) -> Path:
    """A sheet of pairs side by side with distance, decision and truth (red when wrong)."""
    from facegate.errors import FacegateError
    from facegate.images import load_image

    pairs = list(pairs)
    rows = max(1, -(-len(pairs) // columns))
    fig = Figure(figsize=(4.2 * columns, 2.5 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, p in zip(axes, pairs, strict=False):
        try:
            left, right = load_image(p.first), load_image(p.second)
            h = max(left.shape[0], right.shape[0])
            strip = np.concatenate([_pad(left, h), np.full((h, 4, 3), 255, np.uint8), _pad(right, h)], axis=1)
            ax.imshow(strip)
        except FacegateError:
            ax.text(0.5, 0.5, "unreadable", ha="center")
        accepted = bool(np.isfinite(p.distance) and p.distance <= threshold)
        correct = accepted == p.same and np.isfinite(p.distance)
        d = f"d={p.distance:.3f}" if np.isfinite(p.distance) else "no face"
        verdict = "match" if accepted else "no match"
        truth = "same" if p.same else "different"
        ax.set_title(f"{d}: {verdict} ({truth})", fontsize=8, color="green" if correct else "red")
    fig.suptitle(f"{title} — threshold {threshold:.3f}")
    return save_figure(fig, path)


def _pad(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    pad = np.full((height - image.shape[0], image.shape[1], 3), 255, np.uint8)
    return np.concatenate([image, pad], axis=0)


def plot_cmc(curves: Sequence[tuple[str, np.ndarray]], path: str | Path, title: str = "CMC") -> Path:
    """Cumulative match characteristic: identification rate at rank ≤ k."""
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    for label, curve in curves:
        ranks = np.arange(1, len(curve) + 1)
        ax.plot(ranks, curve, marker="o", ms=3, label=label)
    ax.set(xlabel="rank", ylabel="identification rate", ylim=(0, 1.01), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def pick_for_heatmap(labels: Sequence[str], ok: np.ndarray, people: int = 8, per_person: int = 3) -> np.ndarray:
    """Indices of up to ``per_person`` usable photos of the ``people`` people with most usable photos."""
    labels = np.asarray(labels)
    usable = np.flatnonzero(np.asarray(ok))
    names, counts = np.unique(labels[usable], return_counts=True)
    chosen = [n for _, n in sorted(zip(-counts, names, strict=True))][:people]
    picked = [usable[labels[usable] == n][:per_person] for n in chosen]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
