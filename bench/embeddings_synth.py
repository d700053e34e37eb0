"""Large galleries of face templates that behave like real ones, for the scale benchmarks.

LFW View 1 has 4,992 photos of 3,095 people (default pipeline: dlib-resnet, hog+cnn,
TTA), far short of the million templates a scale test needs. The rest are drawn:

- the real embeddings are split into a *between-person* part (each person's mean) and
  a *within-person* part (each photo's offset from its person's mean);
- the pooled within-person covariance ``W`` is estimated from the people with two or
  more photos (offsets scaled by ``n / (n - 1)``, which undoes the shrinkage towards a
  mean estimated from the same photos), and the between-person covariance ``B`` as the
  covariance of the per-person means minus ``W`` averaged over ``1 / n_person`` (the
  part of a mean's spread that is only photo noise), clipped to positive semidefinite;
- a synthetic person is a centre ``c ~ N(mu, B)``, each of their templates is
  ``c + s * w`` with ``w ~ N(0, W)``, projected back onto the unit sphere as the
  model's own embeddings are;
- ``s`` is a per-template spread, log-normal (``exp(0.2 z - 0.04)``): real photos are
  not equally hard (pose, light, age), and a single Gaussian gives genuine distances
  far narrower than LFW's (q1-q99 0.23-0.36 against 0.16-0.42). With it the genuine
  and impostor quantiles match LFW's within about 0.01 from q5 to q95 (the constants
  were chosen on a small grid; ``python bench/embeddings_synth.py`` prints both side
  by side). What stays off: LFW's lowest genuine distances (near-duplicate photos,
  q1 0.16 against 0.19) and the far upper impostor tail (0.74 against 0.70 at q99),
  which no decision here uses.

A gallery is the real LFW templates first (owners ``0..3094``), then synthetic people
with 1-5 templates each, drawn from LFW's own photos-per-person counts. Everything is
deterministic in ``seed``.

    .venv/bin/python bench/embeddings_synth.py [--cache runs/cache] [--n 200000]

Used by ``bench/gallery_scale.py``, ``bench/large_gallery.py`` and
``bench/pgvector_scale.py``: ``from embeddings_synth import synthetic_gallery``.
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw"
PAIR_FILES = ("pairsDevTrain.txt", "pairsDevTest.txt")
#: scale of the person centres' and the within-person draws (1: as estimated)
BETWEEN_SCALE = 1.0
WITHIN_SCALE = 1.0
#: log-normal sigma of each template's within-person spread
WITHIN_SPREAD = 0.2
MAX_TEMPLATES = 5


@dataclass(frozen=True)
class RealFaces:
    """LFW View 1's embeddings (failed images dropped) and a person number per row."""

    vectors: np.ndarray  # float32, (n, 128), unit norm
    labels: np.ndarray  # int64, (n,)
    paths: list[str]


@functools.lru_cache(maxsize=2)
def real_faces(cache: str | None = None) -> RealFaces:
    """Every LFW View 1 photo's default-pipeline embedding, from the embedding cache
    (``runs/cache`` unless given; about 5 minutes on 2 cores when it is empty)."""
    from facegate.datasets.lfw import people_images
    from facegate.evaluate.cache import embed_files
    from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA

    cache_dir = Path(cache) if cache else Path(os.environ.get("FACEGATE_BENCH_CACHE", REPO / "runs" / "cache"))
    paths: list[str] = []
    labels: list[int] = []
    for pair_file in PAIR_FILES:  # the two files name disjoint people
        p, lab = people_images(LFW, pair_file)
        offset = max(labels) + 1 if labels else 0
        paths += p
        labels += [offset + x for x in lab]
    e = embed_files(paths, DEFAULT_MODEL, DEFAULT_DETECTOR, tta=DEFAULT_TTA, cache_dir=cache_dir)
    ok = e.ok
    lab = np.asarray(labels, np.int64)[ok]
    _, lab = np.unique(lab, return_inverse=True)  # renumber: people whose every photo failed go
    kept = [p for p, k in zip(paths, ok, strict=True) if k]
    return RealFaces(e.vectors[ok].astype(np.float32), lab.astype(np.int64), kept)


@dataclass(frozen=True)
class Model:
    mu: np.ndarray  # mean of the person centres
    between: np.ndarray  # (d, d) factor: centre = mu + z @ between
    within: np.ndarray  # (d, d) factor: offset = z @ within
    counts: np.ndarray  # photos per person, the distribution templates per person are drawn from


def _factor(cov: np.ndarray) -> np.ndarray:
    """``F`` with ``F.T @ F == cov`` (eigenvalues clipped at zero)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))).T


@functools.lru_cache(maxsize=2)
def fit_model(cache: str | None = None) -> Model:
    real = real_faces(cache)
    x = real.vectors.astype(np.float64)
    labels = real.labels
    n_people = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_people)
    means = np.zeros((n_people, x.shape[1]))
    np.add.at(means, labels, x)
    means /= counts[:, None]
    offsets = x - means[labels]
    multi = counts[labels] >= 2
    scale = np.sqrt(counts[labels] / np.maximum(counts[labels] - 1, 1))[:, None]
    off = offsets[multi] * scale[multi]
    within = off.T @ off / len(off)
    centred = means - means.mean(0)
    between = centred.T @ centred / n_people - within * float(np.mean(1.0 / counts))
    return Model(means.mean(0), _factor(between), _factor(within), counts)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def draw_people(
    n_people: int,
    rng: np.random.Generator,
    model: Model,
    between_scale: float = BETWEEN_SCALE,
    within_scale: float = WITHIN_SCALE,
    templates: np.ndarray | None = None,
    chunk: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_people`` synthetic people: (owner per template, 0-based; templates float32)."""
    d = model.mu.shape[0]
    if templates is None:
        templates = np.minimum(rng.choice(model.counts, size=n_people), MAX_TEMPLATES)
    owners = np.repeat(np.arange(n_people, dtype=np.int64), templates)
    out = np.empty((len(owners), d), np.float32)
    centres = model.mu + between_scale * (rng.standard_normal((n_people, d)) @ model.between)
    for start in range(0, len(owners), chunk):
        sl = slice(start, min(start + chunk, len(owners)))
        n = sl.stop - sl.start
        spread = np.exp(WITHIN_SPREAD * rng.standard_normal(n) - WITHIN_SPREAD**2)
        w = (within_scale * spread)[:, None] * (rng.standard_normal((n, d)) @ model.within)
        out[sl] = _unit(centres[owners[sl]] + w)
    return owners, out


def synthetic_gallery(
    n_templates: int, seed: int = 0, include_real: bool = True, cache: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A gallery of exactly ``n_templates`` unit-norm float32 templates and their owners
    (int64 person numbers, 0-based, contiguous per person).

    With ``include_real`` the first rows are LFW's real templates (people
    ``0..n_real_people-1``, cut short if ``n_templates`` is smaller), the rest synthetic
    people drawn as the module docstring says.
    """
    model = fit_model(cache)
    rng = np.random.default_rng(seed)
    owners_parts, parts = [], []
    have, next_owner = 0, 0
    if include_real:
        real = real_faces(cache)
        take = min(n_templates, len(real.labels))
        owners_parts.append(real.labels[:take])
        parts.append(real.vectors[:take])
        have, next_owner = take, int(real.labels[:take].max()) + 1 if take else 0
    left = n_templates - have
    if left > 0:
        mean_t = float(np.minimum(model.counts, MAX_TEMPLATES).mean())
        n_people = int(left / mean_t * 1.05) + 10
        o, v = draw_people(n_people, rng, model)
        o, v = o[:left], v[:left]  # the last person may keep fewer templates
        owners_parts.append(o + next_owner)
        parts.append(v)
        while len(np.concatenate(owners_parts)) < n_templates:  # pragma: no cover - 5% slack is plenty
            o, v = draw_people(100, rng, model)
            owners_parts.append(o + int(owners_parts[-1].max()) + 1)
            parts.append(v)
    owners = np.concatenate(owners_parts)[:n_templates]
    matrix = np.concatenate(parts)[:n_templates]
    return owners.astype(np.int64), np.ascontiguousarray(matrix, np.float32)


# -- checking the fit -----------------------------------------------------------------
QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def distance_quantiles(
    vectors: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n_pairs: int = 200_000
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance quantiles (``QUANTILES``) of all genuine pairs (same person;
    at most ``n_pairs`` of them) and of ``n_pairs`` random impostor pairs."""
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], len(lab)]
    gi, gj = [], []
    for s, e in zip(starts, ends, strict=True):
        if e - s >= 2:
            i, j = np.triu_indices(e - s, 1)
            gi.append(order[s + i])
            gj.append(order[s + j])
    gi, gj = np.concatenate(gi), np.concatenate(gj)
    if len(gi) > n_pairs:
        pick = rng.choice(len(gi), n_pairs, replace=False)
        gi, gj = gi[pick], gj[pick]
    genuine = np.linalg.norm(vectors[gi] - vectors[gj], axis=1)
    a = rng.integers(0, len(labels), n_pairs)
    b = rng.integers(0, len(labels), n_pairs)
    keep = labels[a] != labels[b]
    impostor = np.linalg.norm(vectors[a[keep]] - vectors[b[keep]], axis=1)
    return np.quantile(genuine, QUANTILES), np.quantile(impostor, QUANTILES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=None, help="embedding cache folder (default runs/cache)")
    ap.add_argument("--n", type=int, default=200_000, help="templates in the synthetic gallery compared")
    args = ap.parse_args()
    real = real_faces(args.cache)
    print(f"real: {len(real.labels)} LFW templates of {real.labels.max() + 1} people")
    g_real, i_real = distance_quantiles(real.vectors, real.labels, np.random.default_rng(1))
    owners, matrix = synthetic_gallery(args.n, seed=0, include_real=False, cache=args.cache)
    g_syn, i_syn = distance_quantiles(matrix, owners, np.random.default_rng(1))
    print(f"synthetic: {len(owners)} templates of {owners.max() + 1} people\n")
    print("| pairs | source | " + " | ".join(f"q{100 * q:g}" for q in QUANTILES) + " |")
    print("|---|---|" + "---:|" * len(QUANTILES))
    for kind, r, s in (("genuine", g_real, g_syn), ("impostor", i_real, i_syn)):
        print(f"| {kind} | LFW | " + " | ".join(f"{x:.3f}" for x in r) + " |")
        print(f"| {kind} | synthetic | " + " | ".join(f"{x:.3f}" for x in s) + " |")


if __name__ == "__main__":
    main()
