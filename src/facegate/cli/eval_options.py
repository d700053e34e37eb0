"""Options and error handling shared by ``facegate evaluate`` and ``facegate calibrate``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from facegate.cli.output import errors_to_exit
from facegate.detection import DETECTORS
from facegate.evaluate.run import EmbedOptions, System
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA

F = TypeVar("F", bound=Callable[..., Any])


class BadInputError(click.ClickException):
    """A file or value the user gave that cannot be used: a usage error (2), never a "no" (1)."""

    exit_code = 2


def friendly_errors(func: F) -> F:
    """Turn facegate and file errors into one-line messages instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with errors_to_exit(bool(kwargs.get("as_json")), bad_input=True):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class SystemChoice:
    """What --model, --detector, --metric, --tta and --upsample chose: the systems under test."""

    models: tuple[str, ...]
    detector: str
    metric: str | None
    tta: bool
    upsample: int | None

    def systems(self) -> list[System]:
        """One :class:`~facegate.evaluate.run.System` per model (names checked: an unknown one raises)."""
        return [System.make(m, self.detector, self.metric, self.tta, self.upsample) for m in self.models]


@dataclass(frozen=True)
class RunChoice:
    """What --out, --cache, --no-cache, --workers, --progress and --seed chose."""

    out: Path | None
    seed: int
    embed: EmbedOptions


def _handing(func: F, make: Callable[[dict[str, Any]], tuple[str, Any]]) -> F:
    """``func`` called with the object ``make`` builds from (and in place of) its options' parameters."""

    @functools.wraps(func)  # keeps the click options already attached (__click_params__)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        name, value = make(kwargs)
        return func(*args, **{**kwargs, name: value})

    return wrapper  # type: ignore[return-value]


def system_options(multiple_models: bool = False) -> Callable[[F], F]:
    """--model (repeatable with ``multiple_models``), --detector, --metric, --tta, --upsample,
    handed to the command as one :class:`SystemChoice` parameter, ``system``."""

    def choice(kwargs: dict[str, Any]) -> tuple[str, SystemChoice]:
        models = kwargs.pop("models") if multiple_models else (kwargs.pop("model"),)
        picked = (kwargs.pop(k) for k in ("detector", "metric", "tta", "upsample"))
        return "system", SystemChoice(tuple(models), *picked)

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--model",
                "models" if multiple_models else "model",
                multiple=multiple_models,
                default=(DEFAULT_MODEL,) if multiple_models else DEFAULT_MODEL,
                show_default=True,
                help="embedding model" + (" (repeat to compare several on one ROC chart)" if multiple_models else ""),
            ),
            click.option(
                "--detector",
                default=DEFAULT_DETECTOR,
                show_default=True,
                help=f"face detector ({', '.join(DETECTORS.names())})",
            ),
            click.option("--metric", default=None, help="distance metric [default: the model's own]"),
            click.option(
                "--tta/--no-tta",
                default=DEFAULT_TTA,
                show_default=True,
                help="average each face's embedding with its mirror image's (the pipeline's default)",
            ),
            click.option(
                "--upsample",
                type=int,
                default=None,
                help="detector upsampling level [default: automatic, more for small images]",
            ),
        ]
        handed = _handing(func, choice)
        for option in reversed(options):
            handed = option(handed)
        return handed

    return decorate


def run_options(func: F | None = None, *, report: Path | None = Path("facegate-report")) -> Any:
    """--out, --cache, --no-cache, --workers, --progress, --seed, handed to the command as one
    :class:`RunChoice` parameter, ``run``.

    ``report`` is where --out points by default; None writes no report unless asked.
    """
    if func is None:
        return functools.partial(run_options, report=report)

    def choice(kwargs: dict[str, Any]) -> tuple[str, RunChoice]:
        progress = kwargs.pop("progress")
        shown = sys.stderr.isatty() if progress is None else progress
        embedding = EmbedOptions(
            cache_dir=kwargs.pop("cache_dir"),
            use_cache=not kwargs.pop("no_cache"),
            workers=kwargs.pop("workers"),
            progress=shown,
        )
        return "run", RunChoice(kwargs.pop("out"), kwargs.pop("seed"), embedding)

    options = [
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            default=report,
            show_default=report is not None,
            help="folder for report.md, report.json and the plots" + ("" if report else " [default: no report]"),
        ),
        click.option(
            "--cache",
            "cache_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="embedding cache folder [default: $FACEGATE_CACHE/embeddings or ~/.cache/facegate/embeddings]",
        ),
        click.option("--no-cache", is_flag=True, help="compute every embedding afresh and keep none"),
        click.option("--workers", type=int, default=None, help="worker processes [default: one per CPU core]"),
        click.option(
            "--progress/--no-progress", default=None, help="progress bar [default: when stderr is a terminal]"
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="seed for fold and pair draws"),
    ]
    handed = _handing(func, choice)
    for option in reversed(options):
        handed = option(handed)
    return handed


def command_line(ctx: click.Context) -> str:
    """The command and its options, for the report (values as parsed)."""
    parts = [ctx.command_path]
    for name, value in ctx.params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is not None and v is not False:
                parts.append(f"{name}={v}")
    return " ".join(parts)
