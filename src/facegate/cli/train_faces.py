"""``facegate train faces``: fine-tune nn4.small2 on a folder-per-person face set.

Torch is imported only when the command runs, so the CLI loads without the ``[train]``
extra.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from facegate.cli.output import emit, errors_to_exit, json_option
from facegate.cli.train import config_options
from facegate.learn.training.config import FinetuneConfig


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
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the trained weights (CSV, loadable as --weights) and training.json.",
)
@config_options(FinetuneConfig)
@json_option
def faces_command(
    directory: Path,
    model: str,
    weights: Path | None,
    allow_missing: bool,
    out: Path | None,
    as_json: bool,
    **options: object,
) -> None:
    """Fine-tune MODEL with the triplet loss (semi-hard mining) on DIRECTORY/<person>/<photo>."""
    say = (lambda _text: None) if as_json else click.echo
    with errors_to_exit(as_json):  # torch missing: 6
        from facegate.learn.training.faces import finetune_faces, save_finetuned

        start = weights or (
            Path(os.environ["FACEGATE_NN4SMALL2_WEIGHTS"]) if os.environ.get("FACEGATE_NN4SMALL2_WEIGHTS") else None
        )
        if start is None:
            say("no --weights: every layer starts random and trains")
        config = FinetuneConfig(**options)  # type: ignore[arg-type]
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
