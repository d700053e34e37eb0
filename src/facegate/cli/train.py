"""``facegate train``: train models (PyTorch, the ``[train]`` extra).

``facegate train omniglot --method proto --out runs/omniglot/proto --time-budget 1800``
trains a one-shot model on Omniglot's background alphabets, validating on held-out
ones; see :mod:`facegate.training.omniglot` for the methods.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from facegate.cli.oneshot import omniglot_data_option

METHODS = ("siamese-bce", "triplet", "contrastive", "proto", "proto-loo", "cosface")


@click.group(name="train")
def train() -> None:
    """Train embedding models (needs the [train] extra: pip install 'facegate[train]')."""


def _channels(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not widths or min(widths) < 1:
        raise click.BadParameter("widths must be positive")
    return widths


@train.command("omniglot")
@click.option("--method", type=click.Choice(METHODS), default="proto-loo", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@omniglot_data_option("images_background.zip")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=None, help="[20; with --time-budget: as many as fit]")
@click.option("--steps-per-epoch", type=int, default=200, show_default=True)
@click.option(
    "--time-budget", type=float, default=None, help="Stop after this many seconds of wall time (validation included)."
)
@click.option("--lr", type=float, default=None, help="Adam learning rate [2e-3 for proto/proto-loo, else 1e-3].")
@click.option("--input-size", type=int, default=28, show_default=True)
@click.option("--channels", default="32,64,64,128", show_default=True, callback=_channels, help="Conv widths.")
@click.option("--dim", type=int, default=None, help="Add a linear projection to this many dimensions.")
@click.option("--center/--no-center", default=False, show_default=True, help="Centre the ink first.")
@click.option(
    "--fit",
    type=float,
    default=0.8,
    show_default=True,
    help="Scale and centre the ink to this share of the frame (0: off).",
)
@click.option("--rotations/--no-rotations", default=True, show_default=True, help="90/180/270° as new classes.")
@click.option("--affine/--no-affine", default=True, show_default=True, help="Small random affine distortions.")
@click.option("--within-alphabet", type=float, default=0.6, show_default=True, help="Share of within-alphabet batches.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--per-class", type=int, default=None, help="Triplet, proto-loo: images per class (P×K) [4, 2].")
@click.option("--margin", type=float, default=None, help="Loss margin [method default].")
@click.option("--scale", type=float, default=30.0, show_default=True, help="CosFace scale.")
@click.option("--n-way", type=int, default=60, show_default=True, help="Proto: classes per episode.")
@click.option("--k-shot", type=int, default=1, show_default=True)
@click.option("--n-query", type=int, default=5, show_default=True)
@click.option("--val-alphabets", type=int, default=3, show_default=True)
@click.option("--train-alphabets", type=int, default=None, help="Use only this many training alphabets.")
@click.option("--val-episodes", type=int, default=1000, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def omniglot(out_dir: Path, data_root: Path | None, resume: bool, quiet: bool, **options: object) -> None:
    """One-shot learning on Omniglot: train on the background set, keep the best checkpoint."""
    try:
        from facegate.training.omniglot import OmniglotTrainConfig, train_omniglot
    except ImportError as exc:  # torch missing
        raise click.ClickException(f"{exc}; install the [train] extra: pip install 'facegate[train]'") from None
    if data_root is None:
        raise click.UsageError("give --data DIR or set $FACEGATE_OMNIGLOT")
    config = OmniglotTrainConfig(data_root=str(data_root), **options)  # type: ignore[arg-type]
    try:
        result = train_omniglot(config, out_dir, resume=resume, progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        json.dumps(
            {
                "best_checkpoint": str(result.best_checkpoint),
                "best_val_20way_1shot": result.best_val_accuracy,
                "steps": result.steps,
                "train_seconds": round(result.train_seconds, 1),
                "parameters": result.parameters,
            }
        )
    )
