"""Evaluate an Omniglot checkpoint with every one-shot protocol; write plots and a report.

``evaluate_checkpoint`` runs :mod:`facegate.learn.oneshot` on the evaluation set
(pairs, 5-/16-/20-way 1-/5-shot episodes, the 20 official runs, drawers 1–10 vs 11–20)
and writes ``report.md``, ``report.json`` (with :class:`facegate.evaluate.report.Report`,
as every facegate evaluation), ``roc.png``, ``pairs.png`` and ``episode.png`` to the
output folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from facegate.evaluate.report import Report
from facegate.learn.omniglot_data import OmniglotSplit, load_official_runs, load_omniglot
from facegate.learn.oneshot import (
    NetScorer,
    PairResult,
    Scorer,
    drawer_classification,
    embed_split,
    n_way_accuracy,
    official_runs_accuracy,
    pair_evaluation,
)

__all__ = ["EPISODE_SETTINGS", "evaluate_checkpoint", "evaluate_scorer"]

#: (n_way, k_shot) settings reported
EPISODE_SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (16, 1), (16, 5), (20, 1), (20, 5))


def evaluate_scorer(
    scorer: Scorer,
    evaluation: OmniglotSplit,
    runs: list | None,
    episodes: int = 10_000,
    n_pairs: int = 10_000,
    seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray, PairResult]:
    """All protocols on one scorer: ``(results, embeddings, pair result)``."""
    t0 = time.perf_counter()
    emb = embed_split(scorer, evaluation.images)
    results: dict[str, Any] = {"embed_seconds": time.perf_counter() - t0, "dim": int(emb.shape[-1])}
    pairs = pair_evaluation(emb, scorer, n_pairs, seed)
    results["pairs"] = pairs.summary()
    results["episodes"] = [
        n_way_accuracy(emb, scorer, n, k, episodes, seed + 1000 * n + k).summary() for n, k in EPISODE_SETTINGS
    ]
    results["episodes_within_alphabet"] = [
        n_way_accuracy(emb, scorer, 20, k, episodes, seed + 7 + k, group_ids=evaluation.alphabet_ids).summary()
        for k in (1, 5)
    ]
    if runs:
        results["official_runs"] = official_runs_accuracy(scorer, runs).summary()
    results["drawers"] = drawer_classification(emb, scorer)
    return results, emb, pairs


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    episodes: int = 10_000,
    n_pairs: int = 10_000,
    seed: int = 0,
    threads: int = 2,
    plots: bool = True,
    tta: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint and write the report to ``out``; returns the JSON dict."""
    import torch

    from facegate.learn.nets.omniglot import count_parameters, load_checkpoint

    torch.set_num_threads(threads)
    loaded = load_checkpoint(checkpoint)
    scorer = NetScorer(loaded.net, loaded.spec, loaded.head, tta=tta)
    evaluation = load_omniglot("evaluation", data_root)
    runs = load_official_runs(data_root)
    results, emb, pairs = evaluate_scorer(scorer, evaluation, runs, episodes, n_pairs, seed)
    params = count_parameters(loaded.net) + (count_parameters(loaded.head) if loaded.head else 0)
    report = {
        "checkpoint": str(checkpoint),
        "method": loaded.config.get("method"),
        "spec": loaded.spec.to_dict(),
        "parameters": params,
        "tta": tta,
        "training": {
            k: loaded.metrics.get(k)
            for k in ("train_seconds", "cpu_seconds", "wall_seconds", "steps", "val_20way_1shot")
        },
        **results,
    }
    target = Path(out)
    figures: list[Path] = []
    if plots:
        from facegate.learn import oneshot_plots

        figures = [target / "roc.png", target / "pairs.png", target / "episode.png"]
        oneshot_plots.plot_roc(pairs, figures[0])
        oneshot_plots.plot_pairs(evaluation, pairs, scorer.metric, figures[1])
        oneshot_plots.plot_episode(evaluation, emb, scorer, figures[2], seed=seed)
    document(report, figures).write(target)
    return report


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def document(report: dict[str, Any], figures: list[Path] | None = None) -> Report:
    """The evaluation as facegate's report: Markdown sections for people, ``report`` as the JSON."""
    p, d = report["pairs"], report["drawers"]
    doc = Report("Omniglot one-shot evaluation", figures=list(figures or []), data=report)
    run = [
        ("checkpoint", f"`{report['checkpoint']}`"),
        ("method", str(report.get("method"))),
        ("parameters", f"{report['parameters']:,}"),
        ("embedding", f"{report['dim']}-d, metric {report['spec']['metric']}"),
        (
            "test-time augmentation",
            "mean embedding over the image and its four 1-pixel shifts" if report.get("tta") else "none",
        ),
    ]
    tr = report.get("training") or {}
    if tr.get("train_seconds") is not None:
        run.append(("training steps", f"{tr.get('steps')} in {tr['train_seconds'] / 60:.1f} min"))
        if tr.get("wall_seconds") is not None:
            run.append(("wall time, validation included", f"{tr['wall_seconds'] / 60:.1f} min"))
        if tr.get("cpu_seconds") is not None:
            run.append(("process CPU time", f"{tr['cpu_seconds'] / 60:.1f} min"))
    doc.add("Run", run)
    doc.add(
        "Verification pairs (evaluation set, half same character)",
        [
            ("pairs", f"{p['n_pairs']:,}"),
            ("accuracy (threshold by 10-fold cross-validation)", f"{_pct(p['accuracy'])} ± {_pct(p['accuracy_std'])}"),
            ("EER", _pct(p["eer"])),
            ("AUC", f"{p['auc']:.4f}"),
        ],
    )
    doc.add(
        "N-way k-shot episodes (evaluation set, characters from all 20 alphabets)",
        [
            (
                f"{e['n_way']}-way {e['k_shot']}-shot" + (" within one alphabet" if e["within_alphabet"] else ""),
                f"{_pct(e['accuracy'])} ± {_pct(e['ci95'])} (95% CI, {e['episodes']:,} episodes)",
            )
            for e in report["episodes"] + report.get("episodes_within_alphabet", [])
        ],
    )
    if "official_runs" in report:
        r = report["official_runs"]
        rows = [
            ("accuracy", f"{_pct(r['accuracy'])} (error {_pct(r['error'])})"),
            ("per run", ", ".join(f"{100 * a:.0f}" for a in r["per_run"])),
        ]
        if r.get("assignment_accuracy") is not None:
            rows.append(
                ("one-to-one assignment per run (transductive, not the protocol)", _pct(r["assignment_accuracy"]))
            )
        doc.add("The 20 official runs (Lake et al. 2015, within-alphabet 20-way 1-shot)", rows)
    doc.add(
        "Drawers 11–20 of all evaluation characters, drawers 1–10 as templates",
        [
            ("classes, queries", f"{int(d['classes'])}-way, {int(d['queries']):,} queries"),
            ("prototype", _pct(d["prototype"])),
            ("nearest template", _pct(d["nearest"])),
        ],
    )
    return doc
