"""One-shot evaluation on Omniglot, the protocols of the papers.

* **pairs** (Koch et al.): verification on random evaluation-set pairs, half same
  character (two drawers), half different; ROC, AUC, EER, and accuracy with the
  threshold chosen by 10-fold cross-validation (as LFW does).
* **N-way k-shot episodes** (Vinyals et al., Snell et al.): N characters, k drawers
  each as support, one other drawer of each as query; accuracy with a 95% confidence
  interval over episodes (1.96 standard errors).
* **official runs** (Lake et al. 2015): the 20 within-alphabet 20-way 1-shot runs.
* **drawers**: every evaluation character, drawers 1–10 as templates, 11–20 as queries
  (659-way 10-shot).

A :class:`Scorer` turns ink images into embeddings and scores pairs and classes with a
:mod:`facegate.distances` metric, so the protocols run on any model – a trained network
(:class:`NetScorer`), or any embedding function (:class:`EmbeddingScorer`: random or
oracle embeddings for checks). Scores are the metric's own: distances (lower is
closer), or the Siamese head's probability of "same" (``higher_is_closer``).

The embedding of every image of a split is computed once; episodes only index into it.
The pair protocol's figures come from :mod:`facegate.evaluate.metrics` and its k-fold
threshold from :mod:`facegate.evaluate.protocol`, as LFW's do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from facegate.distances import Metric, get_metric, l2_normalise
from facegate.evaluate import metrics
from facegate.evaluate.protocol import assign_folds, kfold_accuracy
from facegate.learn.nets.omniglot import Embedder
from facegate.learn.omniglot_data import OneShotRun
from facegate.learn.training.samplers import PairSampler

__all__ = [
    "EmbeddingScorer",
    "EpisodeResult",
    "NetScorer",
    "PairResult",
    "RunsResult",
    "Scorer",
    "drawer_classification",
    "embed_split",
    "n_way_accuracy",
    "official_runs_accuracy",
    "pair_evaluation",
]


class Scorer(Protocol):
    """What the protocols need from a model."""

    #: how embeddings are compared (its ``higher_is_closer`` says which way is closer)
    metric: Metric

    def embed(self, ink: np.ndarray) -> np.ndarray:
        """``(n, H, W)`` ink images (True/1 = ink) → ``(n, d)`` float32 embeddings."""
        ...

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The metric between each row of ``a`` and the same row of ``b``: ``(n,)``."""
        ...

    def class_scores(self, query: np.ndarray, support: np.ndarray, reduce: str = "prototype") -> np.ndarray:
        """``(..., q, d)`` queries against ``(..., w, k, d)`` support → ``(..., q, w)`` closeness
        (higher is closer, whatever the metric).

        ``reduce="prototype"`` compares with the class mean (Snell et al.; a similarity
        metric averages over the k examples instead); ``"nearest"`` takes the best of the k.
        """
        ...


@dataclass
class EmbeddingScorer:
    """Scores embeddings from any function with a :mod:`facegate.distances` metric: a
    registry name (``"euclidean"``, ``"cosine"``) or a :class:`~facegate.distances.Metric`
    such as a Siamese head's (:meth:`facegate.learn.nets.omniglot.SiameseHead.as_metric`)."""

    embed_fn: Callable[[np.ndarray], np.ndarray]
    metric: Metric | str = "euclidean"

    def __post_init__(self) -> None:
        if isinstance(self.metric, str):
            self.metric = get_metric(self.metric)

    def embed(self, ink: np.ndarray) -> np.ndarray:
        out = np.asarray(self.embed_fn(ink), dtype=np.float32)
        return l2_normalise(out) if self.metric.name == "cosine" else out

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.metric(a, b)

    def class_scores(self, query: np.ndarray, support: np.ndarray, reduce: str = "prototype") -> np.ndarray:
        if reduce not in ("prototype", "nearest"):
            raise ValueError(f"unknown reduce {reduce!r}")
        metric = self.metric
        if reduce == "prototype" and not metric.higher_is_closer:
            return -metric.pairwise(query, support.mean(-2))
        shape = support.shape  # (..., w, k, d): every shot
        flat = support.reshape(*shape[:-3], shape[-3] * shape[-2], shape[-1])
        close = -metric.as_distances(metric.pairwise(query, flat))
        close = close.reshape(*close.shape[:-1], shape[-3], shape[-2])
        return close.mean(-1) if reduce == "prototype" else close.max(-1)


class NetScorer(EmbeddingScorer):
    """A trained network (from :func:`facegate.learn.nets.omniglot.load_checkpoint`) as a scorer,
    compared with the checkpoint's metric (its Siamese head for ``"siamese-head"``).

    With ``tta`` each embedding is the mean over one-pixel shifts
    (:data:`facegate.learn.nets.omniglot.TTA_SHIFTS`).
    """

    def __init__(self, net: Any, spec: Any, head: Any = None, batch_size: int = 512, tta: bool = False) -> None:
        if spec.metric == "siamese-head" and head is None:
            raise ValueError("checkpoint has metric 'siamese-head' but no head")
        self.embedder = Embedder(net, spec, batch_size, tta)
        super().__init__(self.embedder, head.as_metric() if spec.metric == "siamese-head" else spec.metric)

    def embed_prepared(self, x: np.ndarray) -> np.ndarray:
        """Embeddings of already-prepared ``(n, S, S)`` float inputs."""
        return self.embedder.embed_prepared(x)


def embed_split(scorer: Scorer, images: np.ndarray) -> np.ndarray:
    """``(C, D, H, W)`` images → ``(C, D, d)`` embeddings."""
    c, d = images.shape[:2]
    flat = scorer.embed(images.reshape(c * d, *images.shape[2:]))
    return flat.reshape(c, d, -1)


@dataclass
class PairResult:
    n_pairs: int
    #: accuracy with a threshold chosen by stratified 10-fold cross-validation
    accuracy: float
    accuracy_std: float
    #: accuracy of the best single threshold on all pairs (optimistic)
    best_accuracy: float
    auc: float
    eer: float
    #: the EER threshold in the metric's own units (a distance, or the head's probability)
    eer_threshold: float
    #: the metric between the two images of each pair
    scores: np.ndarray = field(repr=False)
    same: np.ndarray = field(repr=False)
    #: (n, 4): class1, drawer1, class2, drawer2
    pairs: np.ndarray = field(repr=False)
    roc_fpr: np.ndarray = field(repr=False)
    roc_tpr: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, float]:
        return {
            "n_pairs": self.n_pairs,
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "best_accuracy": self.best_accuracy,
            "auc": self.auc,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
        }


def pair_evaluation(
    emb: np.ndarray, scorer: Scorer, n_pairs: int = 10_000, seed: int = 0, folds: int = 10
) -> PairResult:
    """Verification on ``n_pairs`` random pairs (half same class) of ``(C, D, d)`` embeddings."""
    rng = np.random.default_rng(seed)
    batch = PairSampler(emb.shape[0], emb.shape[1]).sample(n_pairs, rng)
    a = emb[batch.class1, batch.example1]
    b = emb[batch.class2, batch.example2]
    scores = np.asarray(scorer.pair_scores(a, b), dtype=np.float64)
    same = batch.same
    distances = scorer.metric.as_distances(scores)  # metrics work on dissimilarities
    roc = metrics.roc_curve(distances, same)
    rate, threshold = metrics.eer(distances, same)
    _, best = metrics.best_threshold(distances, same)
    kfold = kfold_accuracy(distances, same, assign_folds(same, folds, seed))
    pairs = np.stack([batch.class1, batch.example1, batch.class2, batch.example2], axis=1)
    return PairResult(
        n_pairs=n_pairs,
        accuracy=kfold.mean,
        accuracy_std=kfold.std,
        best_accuracy=best,
        auc=metrics.auc(roc),
        eer=rate,
        eer_threshold=float(scorer.metric.as_distances(threshold)),
        scores=scores,
        same=same,
        pairs=pairs,
        roc_fpr=roc.fpr,
        roc_tpr=roc.tpr,
    )


@dataclass
class EpisodeResult:
    n_way: int
    k_shot: int
    episodes: int
    accuracy: float
    #: half-width of the 95% confidence interval (1.96 standard errors over episodes)
    ci95: float
    within_alphabet: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "episodes": self.episodes,
            "accuracy": self.accuracy,
            "ci95": self.ci95,
            "within_alphabet": self.within_alphabet,
        }


def _episode_classes(
    n_classes: int,
    n_way: int,
    episodes: int,
    rng: np.random.Generator,
    group_ids: np.ndarray | None,
) -> np.ndarray:
    if group_ids is None:
        return np.argsort(rng.random((episodes, n_classes)), axis=1)[:, :n_way]
    groups = [np.flatnonzero(group_ids == g) for g in np.unique(group_ids)]
    groups = [g for g in groups if g.size >= n_way]
    if not groups:
        raise ValueError(f"no alphabet has {n_way} characters")
    pick = rng.integers(0, len(groups), episodes)
    return np.stack([rng.permutation(groups[g])[:n_way] for g in pick])


def n_way_accuracy(
    emb: np.ndarray,
    scorer: Scorer,
    n_way: int,
    k_shot: int = 1,
    episodes: int = 1000,
    seed: int = 0,
    group_ids: np.ndarray | None = None,
    chunk: int = 250,
) -> EpisodeResult:
    """Accuracy of N-way k-shot episodes on ``(C, D, d)`` embeddings.

    Each episode draws ``n_way`` classes (from a single alphabet when ``group_ids`` is
    given), ``k_shot`` support examples and one query of each; a query is right when
    its own class scores highest. Ties count as wrong.
    """
    n_classes, n_examples = emb.shape[:2]
    if n_way > n_classes or k_shot + 1 > n_examples:
        raise ValueError(f"{n_way}-way {k_shot}-shot needs more than {n_classes}x{n_examples} examples")
    rng = np.random.default_rng(seed)
    classes = _episode_classes(n_classes, n_way, episodes, rng, group_ids)
    drawers = np.argsort(rng.random((episodes, n_way, n_examples)), axis=2)[:, :, : k_shot + 1]
    per_episode = np.empty(episodes)
    for start in range(0, episodes, chunk):
        sl = slice(start, start + chunk)
        c, d = classes[sl], drawers[sl]
        support = emb[c[:, :, None], d[:, :, :k_shot]]  # (e, w, k, dim)
        query = emb[c, d[:, :, k_shot]]  # (e, w, dim)
        scores = scorer.class_scores(query, support)  # (e, w, w)
        own = np.diagonal(scores, axis1=1, axis2=2)
        others = scores.copy()
        idx = np.arange(n_way)
        others[:, idx, idx] = -np.inf
        per_episode[sl] = (own > others.max(axis=2)).mean(axis=1)
    se = per_episode.std(ddof=1) / np.sqrt(episodes) if episodes > 1 else float("nan")
    return EpisodeResult(n_way, k_shot, episodes, float(per_episode.mean()), float(1.96 * se), group_ids is not None)


@dataclass
class RunsResult:
    per_run: list[float]
    accuracy: float
    #: run, test item, predicted class, true class – the items got wrong
    mistakes: list[tuple[int, int, int, int]] = field(repr=False)
    #: (run, items, classes) closeness of every test item to every training image (higher is closer)
    scores: np.ndarray = field(repr=False)
    #: accuracy when each run's 20 answers must be a one-to-one assignment (transductive;
    #: not Lake et al.'s protocol, reported apart); None without scipy
    assignment_accuracy: float | None = None

    @property
    def error(self) -> float:
        return 1.0 - self.accuracy

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "error": self.error,
            "per_run": self.per_run,
            "assignment_accuracy": self.assignment_accuracy,
        }


def official_runs_accuracy(scorer: Scorer, runs: list[OneShotRun]) -> RunsResult:
    """Lake et al.'s 20 runs: each test item goes to the most similar training image."""
    per_run, mistakes, all_scores = [], [], []
    for r, run in enumerate(runs):
        emb = scorer.embed(np.concatenate([run.training, run.test]))
        train, test = emb[: len(run.training)], emb[len(run.training) :]
        scores = scorer.class_scores(test, train[:, None, :])
        pred = scores.argmax(axis=1)
        per_run.append(float(np.mean(pred == run.answers)))
        mistakes += [(r, int(i), int(pred[i]), int(run.answers[i])) for i in np.flatnonzero(pred != run.answers)]
        all_scores.append(scores)
    stacked = np.stack(all_scores)
    return RunsResult(per_run, float(np.mean(per_run)), mistakes, stacked, _assignment_accuracy(stacked, runs))


def _assignment_accuracy(scores: np.ndarray, runs: list[OneShotRun]) -> float | None:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        return None
    right = 0
    for s, run in zip(scores, runs, strict=True):
        items, classes = linear_sum_assignment(-s)
        right += int(np.sum(classes == run.answers[items]))
    return right / sum(len(r.answers) for r in runs)


def drawer_classification(emb: np.ndarray, scorer: Scorer, n_templates: int = 10, chunk: int = 256) -> dict[str, float]:
    """Classify drawers ``n_templates+1..D`` of every class with drawers ``1..n_templates``
    as templates: accuracy with class prototypes and with the nearest template."""
    n_classes = emb.shape[0]
    support = emb[:, :n_templates]  # (C, k, d)
    queries = emb[:, n_templates:]  # (C, q, d)
    truth = np.repeat(np.arange(n_classes), queries.shape[1])
    flat = queries.reshape(-1, emb.shape[-1])
    chunk = int(np.clip(50_000_000 // max(support.size, 1), 8, 256))  # bounds a Siamese head's memory
    out: dict[str, float] = {"classes": float(n_classes), "queries": float(len(flat))}
    for reduce in ("prototype", "nearest"):
        pred = np.concatenate(
            [scorer.class_scores(flat[i : i + chunk], support, reduce).argmax(-1) for i in range(0, len(flat), chunk)]
        )
        out[reduce] = float(np.mean(pred == truth))
    return out
