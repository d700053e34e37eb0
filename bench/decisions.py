"""Decisions at a stated error rate, measured on LFW View 1's test people.

Every threshold comes from the packaged calibration (LFW's *training* people,
``scripts/calibrate_thresholds.py``); here it is applied to the people that
``pairsDevTest.txt`` names (963 people, all their 1,549 images), none of whom was
used for any choice, and the error rates are measured:

- verification over every pair of those images, one photo on each side, and with
  3 photos enrolled (the 53 people with 4 or more images);
- open-set identification: 300 people enrolled from one photo (of the 361 with two
  or more), and 50 enrolled from three photos (of the 53 with four or more); every
  image of the people not enrolled is a stranger. FNIR at the size-aware threshold
  for FPIR 1%, and the FPIR measured there, averaged over ``--draws`` random draws;
- each lever: cohort normalisation, template fusion, probe fusion, the quality
  gate, and a learned projection (LDA), with what it costs in CPU.

The "chosen on" table shows the same levers on the training people (the half not
used as the cohort), where the defaults were chosen.

    .venv/bin/python bench/decisions.py [--cache runs/cache] [--draws 5]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.datasets.lfw import people_images
from facegate.decisions import DEFAULT_FUSION, identification_point, scoring_for, verification_point
from facegate.decisions.fusion import mean_embedding
from facegate.decisions.quality import QualityGate, measure
from facegate.evaluate.cache import embed_files
from facegate.evaluate.curves import Scorer, person_scores
from facegate.evaluate.metrics import at_fmr
from facegate.images import load_image
from facegate.models import get_model
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA, detect_faces

REPO = Path(__file__).resolve().parents[1]
METRIC = "euclidean"


@dataclass
class Faces:
    vectors: np.ndarray  # NaN rows where no face was found
    labels: np.ndarray
    ok: np.ndarray
    paths: list[str]


def load(lfw: Path, pair_file: str, cache: Path | None) -> Faces:
    paths, labels = people_images(lfw, pair_file)
    e = embed_files(paths, DEFAULT_MODEL, DEFAULT_DETECTOR, tta=DEFAULT_TTA, cache_dir=cache, progress=True)
    return Faces(e.vectors.astype(np.float64), np.array(labels), e.ok, paths)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


# -- verification -------------------------------------------------------------------
def all_pairs(faces: Faces, scorer: Scorer) -> tuple[np.ndarray, np.ndarray]:
    """Scores and same-person flags of every pair; a pair with a failed image scores +inf."""
    n = len(faces.labels)
    scores = np.full((n, n), np.inf)
    ok = np.flatnonzero(faces.ok)
    scores[np.ix_(ok, ok)] = scorer.matrix(faces.vectors[ok], faces.vectors[ok])
    upper = np.triu_indices(n, 1)
    return scores[upper], (faces.labels[:, None] == faces.labels[None, :])[upper]


def rates(scores: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(FMR, FNMR) at ``threshold``; failed comparisons (+inf) are never accepted."""
    return float(np.mean(scores[~same] <= threshold)), float(np.mean(scores[same] > threshold))


def verification_one_photo(faces: Faces, scoring, fmrs=(1e-3, 1e-4)) -> tuple[list[tuple], int, int]:
    """The README's first table: every pair of photos of ``faces`` at the operating point of
    each target FMR; rows of (target FMR, threshold, measured FMR, FNMR), and the genuine
    and impostor pair counts."""
    scores, same = all_pairs(faces, Scorer(METRIC, scoring.norm))
    rows = []
    for fmr in fmrs:
        t = verification_point(scoring, fmr=fmr).threshold
        rows.append((fmr, t, *rates(scores, same, t)))
    return rows, int(same.sum()), int((~same).sum())


def enrolment(faces: Faces, m: int, rng: np.random.Generator, people=None):
    """Enrol m photos of each person with at least m+1 (or of ``people``); the rest are probes."""
    counts = np.bincount(faces.labels)
    people = np.flatnonzero(counts >= m + 1) if people is None else people
    enrolled, probes = [], []
    for p in people:
        own = rng.permutation(np.flatnonzero(faces.labels == p))
        enrolled.append(own[:m])
        probes.extend(own[m:])
    return np.array(people), enrolled, np.array(probes)


def gallery_scores(faces: Faces, scorer: Scorer, fusion: str, enrolled: list[np.ndarray], probes: np.ndarray):
    """Probe-by-person fused scores; a person with a failed photo keeps the others, a failed probe scores +inf."""
    rows = [e[faces.ok[e]] for e in enrolled]
    keep = np.array([len(r) > 0 for r in rows])
    flat = np.concatenate([r for r in rows if len(r)])
    starts = np.r_[0, np.cumsum([len(r) for r in rows if len(r)])[:-1]]
    out = np.full((len(probes), len(rows)), np.inf)
    good = faces.ok[probes]
    if good.any():
        block = person_scores(faces.vectors[probes[good]], faces.vectors[flat], starts, scorer, fusion)
        out[np.ix_(np.flatnonzero(good), np.flatnonzero(keep))] = block
    return out


def verify_enrolled(faces: Faces, scoring, fusion: str, m: int, fmr: float, seed: int = 0):
    """FMR and FNMR of door checks against people enrolled with m photos."""
    rng = np.random.default_rng(seed)
    people, enrolled, probes = enrolment(faces, m, rng)
    scorer = Scorer(METRIC, scoring.norm)
    everyone = np.arange(len(faces.labels))
    s = gallery_scores(faces, scorer, fusion, enrolled, everyone)
    owner = faces.labels[:, None] == people[None, :]
    is_probe = np.zeros(len(everyone), bool)
    is_probe[probes] = True
    genuine = s[owner & is_probe[:, None]]
    impostor = s[~owner]
    t = verification_point(scoring, fmr=fmr, templates=m).threshold
    return float(np.mean(impostor <= t)), float(np.mean(genuine > t)), len(people), genuine.size, impostor.size


def probe_fusion(faces: Faces, scoring, fmr: float, frames: int = 3, seed: int = 0):
    """One enrolled photo; the probe is one photo, or the mean of ``frames`` other photos."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(faces.labels)
    people = np.flatnonzero(counts >= frames + 1)
    scorer = Scorer(METRIC, scoring.norm)
    enrolled, single, fused = [], [], []
    for p in people:
        own = rng.permutation(np.flatnonzero((faces.labels == p) & faces.ok))
        if len(own) < frames + 1:
            continue
        enrolled.append(own[0])
        single.append(faces.vectors[own[1]])
        fused.append(mean_embedding(faces.vectors[own[1 : frames + 1]]))
    enrolled = np.array(enrolled)
    same = np.eye(len(enrolled), dtype=bool)
    t = verification_point(scoring, fmr=fmr).threshold
    out = {}
    for name, probes in (("single", np.array(single)), (f"{frames} frames", np.array(fused))):
        s = scorer.matrix(probes, faces.vectors[enrolled])
        out[name] = (float(np.mean(s[~same] <= t)), float(np.mean(s[same] > t)))
    return out, len(enrolled)


# -- identification -----------------------------------------------------------------
def identification(faces: Faces, scoring, fusion: str, n: int, m: int, fpir: float, draws: int):
    """Mean FNIR and FPIR over draws, at the size-aware threshold for ``fpir``."""
    scorer = Scorer(METRIC, scoring.norm)
    counts = np.bincount(faces.labels)
    eligible = np.flatnonzero(counts >= m + 1)
    fnirs, fpirs, thresholds = [], [], []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        chosen = rng.choice(eligible, min(n, len(eligible)), replace=False)
        people, enrolled, probes = enrolment(faces, m, rng, chosen)
        strangers = np.flatnonzero(~np.isin(faces.labels, people))
        templates = [int(faces.ok[e].sum()) for e in enrolled]
        t = identification_point(scoring, [c for c in templates if c], fpir=fpir).threshold
        mated = gallery_scores(faces, scorer, fusion, enrolled, probes)
        best = mated.argmin(axis=1)
        hit = (people[best] == faces.labels[probes]) & (mated.min(axis=1) <= t)
        others = gallery_scores(faces, scorer, fusion, enrolled, strangers)
        fnirs.append(1 - hit.mean())
        fpirs.append(float(np.mean(others.min(axis=1) <= t)))
        thresholds.append(t)
    return float(np.mean(fnirs)), float(np.mean(fpirs)), float(np.mean(thresholds)), len(probes), len(strangers)


# -- levers ---------------------------------------------------------------------------
def lda(train: Faces, dims: int = 100, reg: float = 0.3):
    """A regularised LDA projection fitted on training embeddings (then unit length)."""
    x, y = train.vectors[train.ok], train.labels[train.ok]
    mu = x.mean(axis=0)
    within = np.zeros((x.shape[1],) * 2)
    between = np.zeros_like(within)
    for c in np.unique(y):
        z = x[y == c]
        m = z.mean(axis=0)
        within += (z - m).T @ (z - m)
        between += len(z) * np.outer(m - mu, m - mu)
    within = (1 - reg) * within / len(x) + reg * np.eye(len(within)) * np.trace(within) / len(x) / len(within)
    w, v = np.linalg.eigh(np.linalg.solve(within, between / len(x)))
    basis = v[:, np.argsort(w)[::-1][:dims]].real

    def project(vectors: np.ndarray) -> np.ndarray:
        z = (vectors - mu) @ basis
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    return project


def quality_of(faces: Faces) -> np.ndarray:
    """(eye distance, yaw, sharpness) of every image's face (NaN where none)."""
    model = get_model(DEFAULT_MODEL)
    out = np.full((len(faces.paths), 3), np.nan)
    for i, path in enumerate(faces.paths):
        if faces.ok[i]:
            image = load_image(path)
            face = detect_faces(image, DEFAULT_DETECTOR)[0]
            q = measure(face.landmarks, model.chip(image, face))
            out[i] = (q.eye_distance, q.yaw, q.sharpness)
    return out


def cpu_microseconds(fn, repeats: int = 200) -> float:
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    parser.add_argument("--draws", type=int, default=5, help="random galleries per identification figure")
    args = parser.parse_args()

    test = load(args.lfw, "pairsDevTest.txt", args.cache)
    train = load(args.lfw, "pairsDevTrain.txt", args.cache)
    print(f"test people: {len(np.unique(test.labels))}, images {len(test.labels)}, without a face {(~test.ok).sum()}")
    plain = scoring_for(DEFAULT_MODEL, METRIC, normalise=False)
    normed = scoring_for(DEFAULT_MODEL, METRIC, normalise=True)
    default = scoring_for(DEFAULT_MODEL, METRIC)
    label = {"distance": "plain distance", "asnorm": "AS-norm"}

    # verification, one photo each side
    rows = []
    for scoring in (plain, normed):
        found, n_gen, n_imp = verification_one_photo(test, scoring)
        for fmr, t, measured_fmr, fnmr in found:
            star = " (default)" if scoring.kind == default.kind else ""
            rows.append([f"{label[scoring.kind]}{star}", f"{fmr:g}", f"{t:.4f}", pct(measured_fmr), pct(fnmr)])
    table(
        f"Verification, one photo each side ({n_gen} genuine, {n_imp} impostor pairs)",
        ["score", "target FMR", "threshold (score)", "measured FMR", "FNMR"],
        rows,
    )

    # verification, 3 photos enrolled; template fusion
    rows = []
    for scoring in (plain, normed):
        for fusion in ("min", "mean", "both"):
            for fmr in (1e-3, 1e-4):
                f, fn, people, g, i = verify_enrolled(test, scoring, fusion, 3, fmr)
                star = " (default)" if scoring.kind == default.kind and fusion == DEFAULT_FUSION else ""
                rows.append([f"{label[scoring.kind]}, {fusion}{star}", f"{fmr:g}", pct(f), pct(fn)])
    table(
        f"Door check against people enrolled with 3 photos ({people} people, {g} genuine, {i} impostor attempts)",
        ["score, template fusion", "target FMR", "measured FMR", "FNMR"],
        rows,
    )

    # probe fusion
    rows = []
    for scoring in (plain, normed):
        for fmr in (1e-3, 1e-4):
            out, people = probe_fusion(test, scoring, fmr)
            for name, (f, fn) in out.items():
                rows.append([f"{label[scoring.kind]}, {name}", f"{fmr:g}", pct(f), pct(fn)])
    table(
        f"Probe fusion: one enrolled photo, a probe of 1 or 3 photos ({people} people; "
        "other photos stand in for frames)",
        ["score, probe", "target FMR", "measured FMR", "FNMR"],
        rows,
    )

    # identification
    rows = []
    for scoring in (plain, normed):
        for fusion in ("min", "both") if scoring.kind == default.kind else (DEFAULT_FUSION,):
            for n, m in ((300, 1), (50, 3)):
                fnir, fpir, t, probes, strangers = identification(test, scoring, fusion, n, m, 0.01, args.draws)
                star = " (default)" if scoring.kind == default.kind and fusion == DEFAULT_FUSION else ""
                name = f"{label[scoring.kind]}, {fusion}{star}"
                rows.append([name, f"{n} x {m}", f"{t:.4f}", pct(fnir), pct(fpir), f"{probes} / {strangers}"])
    table(
        f"Open-set identification at the size-aware threshold for FPIR = 1% (mean of {args.draws} draws)",
        ["score, template fusion", "people x photos", "threshold", "FNIR", "measured FPIR", "mated / stranger probes"],
        rows,
    )

    # what the size-aware threshold predicts for larger galleries
    rows = []
    fixed = identification_point(default, [1] * 300, fpir=0.01)
    for n in (100, 300, 1000, 10000):
        point = identification_point(default, [1] * n, fpir=0.01)
        at_fixed = float(default.curve.false_match_rate(fixed.threshold, point.comparisons))
        rows.append(
            [
                f"{n:,}",
                f"{point.comparisons:,.0f}",
                f"{point.threshold:.4f}",
                pct(point.expected_fnmr),
                "yes" if point.reachable else "no",
                pct(at_fixed),
            ]
        )
    table(
        f"Size-aware threshold for FPIR = 1%, one photo per person ({label[default.kind]})",
        [
            "people",
            "effective comparisons",
            "threshold",
            "expected FNIR",
            "reachable",
            "FPIR at the 300-people threshold",
        ],
        rows,
    )

    # quality gate
    rows = []
    q = quality_of(test)
    scores, same = all_pairs(test, Scorer(METRIC, default.norm))
    t = verification_point(default, fmr=1e-3).threshold
    upper = np.triu_indices(len(test.labels), 1)
    for name, gate in (("off", None), ("default", QualityGate()), ("strict", QualityGate(30, 0.25, 10))):
        if gate is None:
            good = np.ones(len(test.labels), bool)
        else:
            good = ~test.ok | (
                (q[:, 0] >= gate.min_eye_distance) & (np.abs(q[:, 1]) <= gate.max_yaw) & (q[:, 2] >= gate.min_sharpness)
            )
        kept = good[upper[1]]
        f, fn = rates(scores[kept], same[kept], t)
        rows.append([name, pct(1 - good.mean()), pct(f), pct(fn)])
    table(
        "Quality gate on the probe (verification, FMR 1e-3, default score)",
        ["gate", "probes refused", "FMR", "FNMR"],
        rows,
    )

    # LDA projection (fitted on the training people)
    rows = []
    project = lda(train)
    for name, vectors_of in (
        ("none", lambda f: f.vectors),
        ("LDA, 100 dims", lambda f: project(np.nan_to_num(f.vectors))),
    ):
        tr = Faces(vectors_of(train), train.labels, train.ok, train.paths)
        te = Faces(vectors_of(test), test.labels, test.ok, test.paths)
        s_tr, same_tr = all_pairs(tr, Scorer(METRIC))
        s_te, same_te = all_pairs(te, Scorer(METRIC))
        for fmr in (1e-3,):
            t = at_fmr(s_tr, same_tr, fmr).threshold
            f, fn = rates(s_te, same_te, t)
            rows.append([name, f"{fmr:g}", pct(f), pct(fn)])
    table(
        "Learned projection: threshold on the training people, measured on the test people",
        ["projection", "target FMR", "measured FMR", "FNMR"],
        rows,
    )

    # what the levers cost
    probe = test.vectors[np.flatnonzero(test.ok)[0]]
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(100, 128))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    people_stats = normed.stats(gallery)  # a gallery computes these once, when it loads
    distances = Scorer(METRIC).matrix(probe[None], gallery)[0]
    face = detect_faces(load_image(test.paths[0]))[0]
    chip = get_model(DEFAULT_MODEL).chip(load_image(test.paths[0]), face)
    rows = [
        [
            "AS-norm: the probe's cohort statistics and its scores against 100 people",
            f"{cpu_microseconds(lambda: normed.score(distances, normed.stats(probe), people_stats)):.0f} µs",
        ],
        ["quality measures of one face", f"{cpu_microseconds(lambda: measure(face.landmarks, chip)):.0f} µs"],
        ["probe fusion, 3 frames", "3x the pipeline per probe (about 25 ms of CPU per frame, bench/speed.py)"],
    ]
    table("CPU per decision of each lever", ["lever", "CPU"], rows)


if __name__ == "__main__":
    main()
