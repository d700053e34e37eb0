"""Figures of an Omniglot evaluation, drawn as :mod:`facegate.evaluate.plots` draws its own
(matplotlib's Figure API, off-screen; no pyplot state): ROC, a sheet of pairs with their
score and decision, and one N-way episode with the model's answer."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from facegate.distances import Metric
from facegate.evaluate.plots import save_figure
from facegate.learn.omniglot_data import OmniglotSplit
from facegate.learn.oneshot import PairResult, Scorer

__all__ = ["plot_episode", "plot_pairs", "plot_roc"]


def plot_roc(pairs: PairResult, path: str | os.PathLike[str]) -> None:
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(pairs.roc_fpr, pairs.roc_tpr, lw=1.5, label=f"AUC {pairs.auc:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.plot([pairs.eer], [1 - pairs.eer], "o", color="C3", label=f"EER {100 * pairs.eer:.2f}%")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (different characters accepted)")
    ax.set_ylabel("true positive rate (same character accepted)")
    ax.set_title(f"Omniglot evaluation pairs (n={pairs.n_pairs:,})")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def plot_pairs(
    split: OmniglotSplit,
    pairs: PairResult,
    metric: Metric,
    path: str | os.PathLike[str],
    n: int = 12,
    seed: int = 0,
) -> None:
    """A sheet of pairs (half same, half different) with their score under ``metric`` and
    the decision at the EER threshold; wrong decisions are titled in red."""
    rng = np.random.default_rng(seed)
    same_idx = rng.choice(np.flatnonzero(pairs.same), n // 2, replace=False)
    diff_idx = rng.choice(np.flatnonzero(~pairs.same), n - n // 2, replace=False)
    picks = np.r_[same_idx, diff_idx]
    cols = 4
    rows = int(np.ceil(len(picks) / cols))
    fig = Figure(figsize=(cols * 2.6, rows * 1.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, i in zip(np.ravel(axes), picks, strict=False):
        c1, d1, c2, d2 = pairs.pairs[i]
        img = np.concatenate([~split.images[c1, d1], np.ones((105, 6), bool), ~split.images[c2, d2]], axis=1)
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        said_same = bool(metric.accepts(pairs.scores[i], pairs.eer_threshold))
        right = said_same == pairs.same[i]
        truth = "same" if pairs.same[i] else "different"
        ax.set_title(f"{truth}: {pairs.scores[i]:.3g}", fontsize=8, color="black" if right else "red")
        ax.axis("off")
    for ax in np.ravel(axes)[len(picks) :]:
        ax.axis("off")
    fig.suptitle(f"pairs and their {metric.name} (red: wrong at the EER threshold)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_episode(
    split: OmniglotSplit,
    emb: np.ndarray,
    scorer: Scorer,
    path: str | os.PathLike[str],
    n_way: int = 20,
    seed: int = 0,
) -> None:
    """One N-way 1-shot episode: the query, the N candidates, the chosen one framed
    (green if right, red if wrong) and the true one marked."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(split.n_characters, n_way, replace=False)
    drawers = np.stack([rng.choice(split.n_drawers, 2, replace=False) for _ in range(n_way)])
    target = int(rng.integers(n_way))
    query = emb[classes[target], drawers[target, 1]][None]
    support = emb[classes, drawers[:, 0]][:, None]
    scores = scorer.class_scores(query, support)[0]
    chosen = int(np.argmax(scores))
    cols = 10
    rows = 1 + int(np.ceil(n_way / cols))
    fig = Figure(figsize=(cols * 1.2, rows * 1.45))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in np.ravel(axes):
        ax.axis("off")
    axes[0, 0].imshow(~split.images[classes[target], drawers[target, 1]], cmap="gray")
    axes[0, 0].set_title("query", fontsize=8)
    for j in range(n_way):
        ax = axes[1 + j // cols, j % cols]
        ax.imshow(~split.images[classes[j], drawers[j, 0]], cmap="gray")
        label = f"{scores[j]:.3g}" + (" ✓" if j == target else "")
        ax.set_title(label, fontsize=7)
        if j == chosen:
            color = "green" if chosen == target else "red"
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color(color)
                spine.set_linewidth(3)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
    verdict = "right" if chosen == target else "wrong"
    fig.suptitle(f"{n_way}-way 1-shot episode: chosen candidate framed ({verdict}); ✓ = truth", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
