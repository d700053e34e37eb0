"""Index samplers for few-shot training on class-by-example data.

Data is addressed as ``(class, example)`` pairs, e.g. Omniglot's ``(character, drawer)``;
samplers return integer index arrays, never images, so they work on any array shaped
``(classes, examples, ...)`` and cost nothing next to the network. All take a
``numpy.random.Generator`` so that runs are reproducible from one seed.

* :class:`PairSampler` – the classic Siamese batch (Koch et al. 2015): half pairs of the
  same class (two different examples), half pairs of different classes.
* :class:`TripletSampler` – random ``(anchor, positive, negative)`` triplets, and
  ``P x K`` batches (P classes, K examples each) for online mining.
* :class:`EpisodeSampler` – N-way k-shot episodes with q queries per class.
* :func:`alphabet_split` – class-disjoint train / validation split by alphabet.

``group_ids`` (the alphabet of each class) lets samplers draw hard, within-alphabet
negatives or episodes with probability ``within_group``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Episode",
    "EpisodeSampler",
    "PairBatch",
    "PairSampler",
    "TripletSampler",
    "alphabet_split",
]


def _groups(n_classes: int, group_ids: Sequence[int] | np.ndarray | None) -> list[np.ndarray]:
    if group_ids is None:
        return []
    ids = np.asarray(group_ids)
    if ids.shape != (n_classes,):
        raise ValueError(f"group_ids must have one entry per class ({n_classes}), got {ids.shape}")
    return [np.flatnonzero(ids == g) for g in np.unique(ids)]


@dataclass(frozen=True)
class PairBatch:
    """``(class, example)`` of both sides of each pair and whether they are the same class."""

    class1: np.ndarray
    example1: np.ndarray
    class2: np.ndarray
    example2: np.ndarray
    same: np.ndarray  # bool


class _ClassSampler:
    """Draws from ``n_classes`` x ``n_examples``; ``within_group`` of the draws that need a
    second class take it from the first one's group (an alphabet) where it has 2+ classes."""

    what = "draws"

    def __init__(
        self,
        n_classes: int,
        n_examples: int,
        group_ids: Sequence[int] | np.ndarray | None = None,
        within_group: float = 0.0,
    ) -> None:
        if n_classes < 2 or n_examples < 2:
            raise ValueError(f"{self.what} need at least 2 classes and 2 examples per class")
        self.n_classes, self.n_examples = n_classes, n_examples
        self.groups = [g for g in _groups(n_classes, group_ids) if g.size >= 2]
        self.within_group = within_group if self.groups else 0.0


class PairSampler(_ClassSampler):
    """Half same-class pairs (distinct examples), half different-class pairs."""

    what = "pairs"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: for each class, the other classes of its group (empty when it has none)
        self.mates: list[np.ndarray] = [np.empty(0, np.int64)] * self.n_classes
        for g in self.groups:
            for c in g:
                self.mates[c] = g[g != c]

    def sample(self, batch_size: int, rng: np.random.Generator) -> PairBatch:
        n_same = batch_size // 2
        n_diff = batch_size - n_same
        # same-class pairs: two distinct examples of one class
        c_same = rng.integers(0, self.n_classes, n_same)
        e1 = rng.integers(0, self.n_examples, n_same)
        e2 = (e1 + rng.integers(1, self.n_examples, n_same)) % self.n_examples
        # different-class pairs: a second class != the first
        c1 = rng.integers(0, self.n_classes, n_diff)
        c2 = (c1 + rng.integers(1, self.n_classes, n_diff)) % self.n_classes
        if self.within_group > 0:
            hard = rng.random(n_diff) < self.within_group
            for i in np.flatnonzero(hard):
                mates = self.mates[c1[i]]
                if mates.size:
                    c2[i] = mates[rng.integers(0, mates.size)]
        d1 = rng.integers(0, self.n_examples, n_diff)
        d2 = rng.integers(0, self.n_examples, n_diff)
        same = np.concatenate([np.ones(n_same, bool), np.zeros(n_diff, bool)])
        return PairBatch(
            class1=np.concatenate([c_same, c1]),
            example1=np.concatenate([e1, d1]),
            class2=np.concatenate([c_same, c2]),
            example2=np.concatenate([e2, d2]),
            same=same,
        )


class TripletSampler(_ClassSampler):
    """Random triplets, or ``P x K`` batches for online mining."""

    what = "triplets"

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """``(anchor_class, anchor_ex, positive_ex, negative_class, negative_ex)``."""
        ca = rng.integers(0, self.n_classes, n)
        ea = rng.integers(0, self.n_examples, n)
        ep = (ea + rng.integers(1, self.n_examples, n)) % self.n_examples
        cn = (ca + rng.integers(1, self.n_classes, n)) % self.n_classes
        en = rng.integers(0, self.n_examples, n)
        return ca, ea, ep, cn, en

    def sample_pk(self, p: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``P`` distinct classes with ``K`` distinct examples each: ``(classes, examples)``.

        Both arrays have length ``P * K``; the class array doubles as the label vector.
        With ``within_group`` > 0 the classes are, with that probability, drawn from a
        single group (alphabet) as far as it has enough classes.
        """
        classes = _distinct_classes(p, self.n_classes, self.groups, self.within_group, rng)
        examples = np.stack([rng.choice(self.n_examples, k, replace=False) for _ in range(p)])
        return np.repeat(classes, k), examples.reshape(-1)


def _distinct_classes(
    n: int, n_classes: int, groups: list[np.ndarray], within_group: float, rng: np.random.Generator
) -> np.ndarray:
    if n > n_classes:
        raise ValueError(f"asked for {n} distinct classes out of {n_classes}")
    if groups and within_group > 0 and rng.random() < within_group:
        group = groups[rng.integers(0, len(groups))]
        take = rng.permutation(group)[:n]
        if take.size < n:  # top up from the other classes
            rest = np.setdiff1d(np.arange(n_classes), take)
            take = np.concatenate([take, rng.choice(rest, n - take.size, replace=False)])
        return take
    return rng.choice(n_classes, n, replace=False)


@dataclass(frozen=True)
class Episode:
    """An N-way episode: ``(n_way, k_shot)`` support and ``(n_way, n_query)`` query indices.

    ``classes`` are the N class ids; support and query hold example ids of those
    classes (disjoint within each class). The label of row ``i`` is ``i``.
    """

    classes: np.ndarray
    support: np.ndarray
    query: np.ndarray


class EpisodeSampler:
    """N-way k-shot episodes with ``n_query`` queries per class."""

    def __init__(
        self,
        n_classes: int,
        n_examples: int,
        n_way: int,
        k_shot: int,
        n_query: int = 1,
        group_ids: Sequence[int] | np.ndarray | None = None,
        within_group: float = 0.0,
    ) -> None:
        if n_way > n_classes:
            raise ValueError(f"{n_way}-way episodes need {n_way} classes, only {n_classes} given")
        if k_shot + n_query > n_examples:
            raise ValueError(f"{k_shot} shots + {n_query} queries exceed {n_examples} examples per class")
        self.n_classes, self.n_examples = n_classes, n_examples
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.groups = [g for g in _groups(n_classes, group_ids) if g.size >= 2]
        self.within_group = within_group if self.groups else 0.0

    def sample(self, rng: np.random.Generator) -> Episode:
        classes = _distinct_classes(self.n_way, self.n_classes, self.groups, self.within_group, rng)
        picks = np.argsort(rng.random((self.n_way, self.n_examples)), axis=1)[:, : self.k_shot + self.n_query]
        return Episode(classes=classes, support=picks[:, : self.k_shot], query=picks[:, self.k_shot :])


def alphabet_split(alphabets: Sequence[str], n_validation: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split alphabet names into ``(train, validation)``; every character of an alphabet
    goes to one side, so the two sets of classes are disjoint."""
    names = sorted(set(alphabets))
    if not 0 <= n_validation < len(names):
        raise ValueError(f"cannot hold out {n_validation} of {len(names)} alphabets")
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:n_validation])
    train = sorted(names[i] for i in order[n_validation:])
    return train, val
