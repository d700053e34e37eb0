"""``facegate train faces``: fine-tune nn4.small2 on a folder-per-person face set.

Torch is imported only when the command runs, so the CLI loads without the ``[train]``
extra.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from facegate.cli.output import emit, errors_to_exit, json_option
from facegate.errors import ModelUnavailableError

_STAGES = ("stem", "inception_3a", "inception_3b", "inception_3c", "inception_4a", "inception_4e",
           "inception_5a", "inception_5b", "head")  # fmt: skip


@click.command("faces")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--model",
    type=click.Choice(["openface-nn4small2"]),
    default="openface-nn4small2",
    show_default=True,
    help="The network to fine-tune.",
)
@click.option(
    "--weights",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Starting weights: the exercise's CSV folder, a Keras .h5 or a .pt "
    "(default: $FACEGATE_NN4SMALL2_WEIGHTS; none: train from random).",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Train even when the starting weights lack some layers (those start random); "
    "without it an incomplete set is refused with the list of what is missing.",
)
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the trained weights (CSV, loadable as --weights) and training.json.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--time-budget", type=click.FloatRange(min=0), default=None, help="Stop training after SECONDS.")
@click.option(
    "--holdout-people",
    type=click.IntRange(2),
    default=10,
    show_default=True,
    help="People kept out of training to measure verification accuracy on.",
)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option(
    "--train-from",
    type=click.Choice(_STAGES),
    default="inception_3c",
    show_default=True,
    help="First trained stage when starting from weights (earlier ones stay frozen).",
)
@click.option(
    "--crop",
    type=click.Choice(["align", "whole"]),
    default="align",
    show_default=True,
    help="align: HOG face + OpenFace alignment (whole photo if no face); whole: resize the photo.",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="PyTorch CPU threads (default: PyTorch's choice; 1 is often fastest on a busy machine).",
)
@json_option
def faces_command(
    directory: Path,
    model: str,
    weights: Path | None,
    allow_missing: bool,
    epochs: int,
    out: Path | None,
    seed: int,
    time_budget: float | None,
    holdout_people: int,
    lr: float,
    train_from: str,
    crop: str,
    threads: int | None,
    as_json: bool,
) -> None:
    """Fine-tune MODEL with the triplet loss (semi-hard mining) on DIRECTORY/<person>/<photo>."""
    say = (lambda _text: None) if as_json else click.echo
    with errors_to_exit(as_json):
        try:
            from facegate.training.faces import FinetuneConfig, finetune_faces, save_finetuned
        except ImportError as exc:
            raise ModelUnavailableError(
                f"training needs PyTorch ({exc.name} is missing): pip install 'facegate[train]'"
            ) from exc
        start = weights or (
            Path(os.environ["FACEGATE_NN4SMALL2_WEIGHTS"]) if os.environ.get("FACEGATE_NN4SMALL2_WEIGHTS") else None
        )
        if start is None:
            say("no --weights: every layer starts random and trains")
        config = FinetuneConfig(
            epochs=epochs,
            time_budget=time_budget,
            holdout_people=holdout_people,
            lr=lr,
            seed=seed,
            train_from=train_from,
            crop=crop,  # type: ignore[arg-type]
            threads=threads,
        )
        try:
            result = finetune_faces(directory, start, config, strict=not allow_missing, log=say)
        except (ValueError, FileNotFoundError) as exc:
            raise click.UsageError(str(exc)) from exc
        summary = result.summary()
        if out is not None:
            save_finetuned(result, out)
            summary["out"] = str(out)
        text = (
            f"{model}: held-out verification accuracy {result.before.accuracy:.3f} -> {result.after.accuracy:.3f} "
            f"(AUC {result.before.auc:.3f} -> {result.after.auc:.3f}) on {len(result.test_people)} people; "
            f"{result.steps} steps in {result.train_seconds:.0f} s"
            + (f"; weights written to {out}" if out is not None else "; weights not saved (give --out)")
        )
        emit(as_json, summary, text)
