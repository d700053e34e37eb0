"""``facegate evaluate oneshot CHECKPOINT --out DIR``: the Omniglot one-shot protocols."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from facegate.cli.output import errors_to_exit


def omniglot_data_option(files: str) -> Callable[[Any], Any]:
    """``--data DIR``: the Omniglot folder holding ``files`` [default: $FACEGATE_OMNIGLOT]."""
    return click.option(
        "--data",
        "data_root",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=lambda: os.environ.get("FACEGATE_OMNIGLOT"),
        help=f"Folder with {files} (or extracted) [default: $FACEGATE_OMNIGLOT].",
    )


def _pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


@click.command("oneshot")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@omniglot_data_option("images_evaluation.zip and all_runs.zip")
@click.option("--episodes", type=int, default=10_000, show_default=True, help="Random episodes per setting.")
@click.option("--pairs", "n_pairs", type=int, default=10_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--tta/--no-tta", default=False, show_default=True, help="Average embeddings over 1-pixel shifts.")
@click.option("--no-plots", is_flag=True)
def oneshot_command(
    checkpoint: Path,
    out_dir: Path,
    data_root: Path | None,
    episodes: int,
    n_pairs: int,
    seed: int,
    threads: int,
    tta: bool,
    no_plots: bool,
) -> None:
    """Evaluate an Omniglot checkpoint: pairs (ROC, EER), N-way k-shot episodes, the 20
    official runs and drawers 1–10 vs 11–20; writes report.md, report.json and plots."""
    if data_root is None:
        raise click.UsageError("give --data DIR or set $FACEGATE_OMNIGLOT")
    with errors_to_exit(False, bad_input=True):  # torch missing: 6
        from facegate.learn.oneshot_report import evaluate_checkpoint

        report = evaluate_checkpoint(
            checkpoint, out_dir, data_root, episodes, n_pairs, seed, threads, plots=not no_plots, tta=tta
        )
    p = report["pairs"]
    click.echo(f"pairs ({p['n_pairs']}): accuracy {_pct(p['accuracy'])}  EER {_pct(p['eer'])}  AUC {p['auc']:.4f}")
    for e in report["episodes"] + report["episodes_within_alphabet"]:
        tag = " within alphabet" if e["within_alphabet"] else ""
        click.echo(f"{e['n_way']:>2}-way {e['k_shot']}-shot{tag}: {_pct(e['accuracy'])} ± {_pct(e['ci95'])}")
    if "official_runs" in report:
        click.echo(f"20 official runs: {_pct(report['official_runs']['accuracy'])}")
    d = report["drawers"]
    click.echo(f"drawers 11-20 vs 1-10 templates: prototype {_pct(d['prototype'])}  nearest {_pct(d['nearest'])}")
    click.echo(f"report: {out_dir / 'report.md'}")
