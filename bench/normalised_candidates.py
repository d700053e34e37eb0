"""Where exact search's best person under normalised scores sits in an index's order of templates.

The gallery asks its index for the templates nearest a probe and scores their owners exactly.
With the default cohort-normalised scores (AS-norm) the best-scoring person is not always
among the nearest by distance: a person whose cohort distances are narrow (small spread) or
far (large mean) gains more from the same distance. So the index orders templates by their
squared distance plus their owner's penalty (``AsNorm.index_penalty``: the lowering the
person's statistics earn, linearised at the cohort's median nearest distance, taken from an
extreme person's). This script measures, on ``bench/gallery_scale.py``'s gallery of
``--size`` templates and its tuning probes of test people (never the reported ones), where
exact search's best-scoring person's first template falls when every template is ordered

- by distance (the index's order before the penalty),
- by the penalised distance, with the references the gallery uses (the cohort's own medians),
  and with the medians of the gallery's people and other linearisation distances instead.

It prints the share of probes whose best person owns one of the first 64, 100 and 256
templates of each order.

    .venv/bin/python bench/normalised_candidates.py --size 1000000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def person_shift(mean: np.ndarray, std: np.ndarray, d_ref: float, mu_ref: float, sd_ref: float) -> np.ndarray:
    """Each person's distance threshold minus a reference person's (``mu_ref``, ``sd_ref``), at
    the score where the reference pair's threshold is ``d_ref``."""
    w_ref, w = 1 / sd_ref, 1 / std
    return (w_ref * (d_ref - mu_ref) + w * (mean - d_ref)) / (w_ref + w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=200)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from gallery_scale import gallery_path, probes

    from facegate.gallery import Gallery

    g = Gallery(gallery_path(args.size), index="ann", normalise=None)
    index, scoring = g._index, g.scoring
    stats = g._person_stats.rows(np.arange(len(index.people)))
    queries, _ = probes(args.probes, tuning=True, test_only=True)
    owner_row = np.repeat(np.arange(len(index.people)), index.counts)  # person row of each template
    squared_norms = np.einsum("ij,ij->i", index.matrix, index.matrix)
    orders = {"distance": np.zeros(len(index.people))}  # what each person's squared distances are lowered by
    nearest = scoring.norm.reference[0]
    orders[f"penalised (the gallery's: the cohort's medians, at {nearest:.2f})"] = -scoring.index_penalty(stats)
    people_ref = float(np.median(stats.mean)), float(np.median(stats.std))
    for d_ref in (0.30, 0.35, people_ref[0]):
        lift = person_shift(stats.mean, stats.std, d_ref, *people_ref)
        orders[f"penalised, the people's medians, at {d_ref:.2f}"] = 2 * d_ref * lift
    depth: dict[str, list[int]] = {name: [] for name in orders}
    probe_stats = scoring.stats(queries)
    for i, q in enumerate(queries):
        probe = type(probe_stats)(probe_stats.mean[i : i + 1], probe_stats.std[i : i + 1])
        best = int(np.argmin(scoring.score(index.person_distances(q), probe, stats)))
        squared = np.maximum(squared_norms + q @ q - 2 * (index.matrix @ q), 0)
        mine = slice(index._starts[best], index._starts[best] + index.counts[best])
        for name, lift in orders.items():
            key = squared - lift[owner_row]
            depth[name].append(int((key < key[mine].min()).sum()))
    print(f"{args.size:,} templates, {len(queries)} tuning probes of test people; share whose best person")
    print("(normalised scores, exact search) owns a template within the first 64 / 100 / 256 of each order\n")
    print("| order of templates | 64 | 100 | 256 |")
    print("|---|---:|---:|---:|")
    for name, ranks in depth.items():
        r = np.array(ranks)
        print(f"| {name} | {(r < 64).mean():.4f} | {(r < 100).mean():.4f} | {(r < 256).mean():.4f} |")


if __name__ == "__main__":
    main()
