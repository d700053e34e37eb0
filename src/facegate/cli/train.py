"""``facegate train``: train models (PyTorch, the ``[train]`` extra).

``facegate train omniglot --method proto --out runs/omniglot/proto --time-budget 1800``
trains a one-shot model on Omniglot's background alphabets, validating on held-out
ones; see :mod:`facegate.learn.training.omniglot` for the methods.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import click

from facegate.cli.oneshot import omniglot_data_option
from facegate.cli.output import errors_to_exit
from facegate.learn.training.config import OmniglotTrainConfig

F = TypeVar("F", bound=Callable[..., Any])


@click.group(name="train")
def train() -> None:
    """Train embedding models (needs the [train] extra: pip install 'facegate[train]')."""


def _channels(_ctx: click.Context, _param: click.Parameter, value: str | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(value, tuple):
        return value
    try:
        widths = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not widths or min(widths) < 1:
        raise click.BadParameter("widths must be positive")
    return widths


_TYPES = {"int": int, "float": float, "str": str}


def config_options(config: type) -> Callable[[F], F]:
    """One option per field of the dataclass ``config``: its default, its type and its ``help`` metadata.

    ``steps_per_epoch`` becomes ``--steps-per-epoch``, a bool ``--center/--no-center``, a
    ``tuple[int, ...]`` comma-separated integers, a ``choices`` metadata a choice; a field
    with ``cli=False`` metadata has none.
    """

    def decorate(func: F) -> F:
        for f in reversed(fields(config)):
            if not f.metadata.get("cli", True):
                continue
            flag = "--" + f.name.replace("_", "-")
            kind = str(f.type).replace(" | None", "")
            shown = f.default is not None
            common: dict[str, Any] = {"help": f.metadata.get("help"), "show_default": shown}
            if kind == "bool":
                option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=f.default, **common)
            elif kind == "tuple[int, ...]":
                default = ",".join(map(str, f.default))
                option = click.option(flag, f.name, default=default, callback=_channels, **common)
            else:
                choices, low = f.metadata.get("choices"), f.metadata.get("min")
                if choices:
                    kind_type: Any = click.Choice(choices)
                elif low is not None:
                    kind_type = (click.IntRange if kind == "int" else click.FloatRange)(min=low)
                else:
                    kind_type = _TYPES[kind]
                option = click.option(flag, f.name, type=kind_type, default=f.default, **common)
            func = option(func)
        return func

    return decorate


@train.command("omniglot")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@omniglot_data_option("images_background.zip")
@config_options(OmniglotTrainConfig)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def omniglot(out_dir: Path, data_root: Path | None, resume: bool, quiet: bool, **options: object) -> None:
    """One-shot learning on Omniglot: train on the background set, keep the best checkpoint."""
    if data_root is None:
        raise click.UsageError("give --data DIR or set $FACEGATE_OMNIGLOT")
    with errors_to_exit(False, bad_input=True):  # torch missing: 6
        from facegate.learn.training.omniglot import train_omniglot

        config = OmniglotTrainConfig(data_root=str(data_root), **options)  # type: ignore[arg-type]
        result = train_omniglot(config, out_dir, resume=resume, progress=not quiet)
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
