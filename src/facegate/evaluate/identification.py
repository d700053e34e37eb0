"""1:K identification metrics: closed-set rank-1 and CMC, open-set DIR at a fixed FPIR.

A gallery holds templates (embeddings with a person label); probes are compared
with every template in one matrix product, and a person's score is the distance of
their closest template. Conventions as in :mod:`facegate.evaluate.metrics`:
distances, smaller is more alike, a candidate is returned when ``distance <= t``.

- Closed set: every probe's person is enrolled. The rank of a probe is the position
  of its true person in the sorted list of people (ties count against it); the CMC
  gives the share of probes at rank ≤ k, its first value is the rank-1 rate.
- Open set: mated probes (enrolled people) and non-mated probes (people not
  enrolled). At threshold t, FPIR is the share of non-mated probes that get any
  candidate, and DIR the share of mated probes whose true person is the rank-1
  candidate within t. DIR is reported at the t whose FPIR does not exceed a target.

A probe without an embedding (failure to enrol) is a miss: rank infinity, never
detected, and, for a non-mated probe, no false alarm. A person whose every gallery
photo failed cannot be found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facegate.distances import get_metric


@dataclass(frozen=True)
class PersonScores:
    """Probe-by-person distances: each probe's closest template of each enrolled person."""

    scores: np.ndarray  # (n_probes, n_people), +inf for a failed probe
    people: np.ndarray  # (n_people,) labels of the columns


def person_scores(
    gallery: np.ndarray, gallery_labels: Sequence, probes: np.ndarray, metric: str = "euclidean"
) -> PersonScores:
    """Distance of every probe to the closest template of every enrolled person.

    Rows of ``gallery`` or ``probes`` holding NaN (failed images) are ignored as
    templates and give a row of ``+inf`` as probes.
    """
    gallery = np.asarray(gallery, dtype=np.float64)
    probes = np.asarray(probes, dtype=np.float64)
    g_labels = np.asarray(gallery_labels)
    g_ok = np.isfinite(gallery).all(axis=1) if gallery.size else np.zeros(len(g_labels), bool)
    p_ok = np.isfinite(probes).all(axis=1) if probes.size else np.zeros(len(probes), bool)
    people = np.unique(g_labels)
    scores = np.full((len(probes), len(people)), np.inf)
    kept = g_ok.nonzero()[0]
    if kept.size and p_ok.any():
        column = np.searchsorted(people, g_labels[kept])
        order = np.argsort(column, kind="stable")
        kept, column = kept[order], column[order]
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        d = get_metric(metric).pairwise(probes[p_ok], gallery[kept])
        block = np.minimum.reduceat(d, starts, axis=1)
        rows = np.flatnonzero(p_ok)
        scores[np.ix_(rows, column[starts])] = block
    return PersonScores(scores, people)


def ranks(ps: PersonScores, probe_labels: Sequence) -> np.ndarray:
    """The rank (1 = best) of each probe's true person; ``inf`` when it cannot be found.

    Ties count against the probe: rank = number of people at least as close as the
    true one.
    """
    labels = np.asarray(probe_labels)
    col = np.searchsorted(ps.people, labels)
    col = np.clip(col, 0, max(len(ps.people) - 1, 0))
    enrolled = (ps.people[col] == labels) if len(ps.people) else np.zeros(len(labels), bool)
    out = np.full(len(labels), np.inf)
    rows = np.flatnonzero(enrolled)
    true = ps.scores[rows, col[rows]]
    found = np.isfinite(true)
    rows, true = rows[found], true[found]
    out[rows] = (ps.scores[rows] <= true[:, None]).sum(axis=1)
    return out


def cmc(rank: np.ndarray, max_rank: int | None = None) -> np.ndarray:
    """Cumulative match characteristic: share of probes with rank ≤ k, for k = 1..max_rank."""
    rank = np.asarray(rank, dtype=np.float64)
    if rank.size == 0:
        raise ValueError("no probes")
    finite = rank[np.isfinite(rank)]
    top = int(max_rank if max_rank is not None else (finite.max() if finite.size else 1))
    ks = np.arange(1, top + 1)
    return (rank[:, None] <= ks[None, :]).mean(axis=0)


def rank1(rank: np.ndarray) -> float:
    return float(np.mean(np.asarray(rank) <= 1))


@dataclass(frozen=True)
class OpenSetPoint:
    """DIR at the threshold whose FPIR stays at or below a target, or why not measurable."""

    target_fpir: float
    dir: float | None
    fpir: float | None
    threshold: float | None
    note: str = ""


def open_set(
    mated: PersonScores,
    mated_labels: Sequence,
    non_mated: PersonScores,
    targets: Sequence[float] = (0.1, 0.01),
) -> list[OpenSetPoint]:
    """DIR (rank 1) at each target FPIR, from mated and non-mated probes' person scores.

    The threshold is the largest whose measured FPIR does not exceed the target;
    a target below ``1 / n_non_mated`` cannot be measured and says so.
    """
    best_non = non_mated.scores.min(axis=1) if non_mated.scores.shape[1] else np.full(len(non_mated.scores), np.inf)
    rank = ranks(mated, mated_labels)
    labels = np.asarray(mated_labels)
    col = np.clip(np.searchsorted(mated.people, labels), 0, max(len(mated.people) - 1, 0))
    true = np.where(np.isfinite(rank), mated.scores[np.arange(len(labels)), col], np.inf)
    hit_score = np.where(rank <= 1, true, np.inf)  # a mated probe is detected and identified when this <= t
    n_non = len(best_non)
    finite_non = np.sort(best_non[np.isfinite(best_non)])
    points = []
    for target in targets:
        if n_non == 0 or n_non < int(np.ceil(1.0 / target)):
            need = int(np.ceil(1.0 / target))
            points.append(OpenSetPoint(target, None, None, None, f"needs ≥ {need} non-mated searches, has {n_non}"))
            continue
        allowed = int(np.floor(target * n_non + 1e-9))  # false alarms allowed
        # just below the (allowed+1)-th closest non-mated score; every score when fewer are finite
        t = np.inf if allowed >= finite_non.size else float(np.nextafter(finite_non[allowed], -np.inf))
        fpir = float(np.sum(best_non <= t) / n_non)
        dir_ = float(np.mean(hit_score <= t)) if len(hit_score) else 0.0
        points.append(OpenSetPoint(target, dir_, fpir, float(t)))
    return points
