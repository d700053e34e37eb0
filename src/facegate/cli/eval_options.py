"""Options and error handling shared by ``facegate evaluate`` and ``facegate calibrate``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from facegate.detection import DETECTORS
from facegate.errors import FacegateError
from facegate.evaluate.run import EmbedOptions
from facegate.pipeline import DEFAULT_DETECTOR, DEFAULT_MODEL, DEFAULT_TTA

F = TypeVar("F", bound=Callable[..., Any])


class FacegateClickError(click.ClickException):
    """A facegate error shown as one line, exiting with the error's own code."""

    def __init__(self, exc: FacegateError) -> None:
        super().__init__(str(exc))
        self.exit_code = exc.exit_code


class BadInputError(click.ClickException):
    """A file or value the user gave that cannot be used: a usage error (2), never a "no" (1)."""

    exit_code = 2


def friendly_errors(func: F) -> F:
    """Turn facegate and file errors into one-line messages instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FacegateError as exc:
            raise FacegateClickError(exc) from exc
        except (FileNotFoundError, ValueError) as exc:
            raise BadInputError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def system_options(multiple_models: bool = False) -> Callable[[F], F]:
    """--model, --detector, --metric, --tta, --upsample."""

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
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_options(func: F | None = None, *, report: Path | None = Path("facegate-report")) -> Any:
    """--out, --cache, --no-cache, --workers, --progress, --seed.

    ``report`` is where --out points by default; None writes no report unless asked.
    """
    if func is None:
        return functools.partial(run_options, report=report)
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
            help="embedding cache folder [default: $FACEGATE_CACHE or ~/.cache/facegate/embeddings]",
        ),
        click.option("--no-cache", is_flag=True, help="compute every embedding afresh and keep none"),
        click.option("--workers", type=int, default=None, help="worker processes [default: one per CPU core]"),
        click.option(
            "--progress/--no-progress", default=None, help="progress bar [default: when stderr is a terminal]"
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="seed for fold and pair draws"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def embed_options(cache_dir: Path | None, no_cache: bool, workers: int | None, progress: bool | None) -> EmbedOptions:
    shown = sys.stderr.isatty() if progress is None else progress
    return EmbedOptions(cache_dir=cache_dir, use_cache=not no_cache, workers=workers, progress=shown)


def command_line(ctx: click.Context) -> str:
    """The command and its options, for the report (values as parsed)."""
    parts = [ctx.command_path]
    for name, value in ctx.params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is not None and v is not False:
                parts.append(f"{name}={v}")
    return " ".join(parts)
