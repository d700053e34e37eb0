"""How the CLI speaks: human sentences or ``--json``, and exit codes scripts can use.

Exit codes: 0 yes (door opens, person identified, same person, command done);
1 a clear "no" (door stays shut, not in the database, different people, some
photos failed); 2 usage error; 3 no face / too many faces; 4 unreadable image;
5 gallery error (unknown or duplicate person, other model); 6 model unavailable;
7 try again (the face is too small, turned or blurred to decide on); 8 a video
source that cannot be opened or was lost (``facegate watch``); 70 an
unexpected error (a bug: never a "no").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from facegate.errors import FacegateError, MissingExtraError

EXIT_YES = 0
EXIT_NO = 1
EXIT_USAGE = 2
#: sysexits' EX_SOFTWARE: facegate itself failed
EXIT_UNEXPECTED = 70


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    """Print ``payload`` as JSON, or ``text`` for people."""
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=_jsonable))
    else:
        click.echo(text)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


#: the optional dependencies, and the extra that installs each
EXTRAS = {
    "torch": "train",
    "h5py": "train",
    "fastapi": "serve",
    "fastapi_offline": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
}


def missing_extra(exc: ImportError) -> MissingExtraError | None:
    """The error to report for an optional dependency that is not installed (None: a bug, not a missing extra)."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return MissingExtraError(f"{module} is not installed ({exc}): pip install 'facegate[{extra}]'")


@contextmanager
def errors_to_exit(as_json: bool, bad_input: bool = False) -> Iterator[None]:
    """The CLI's one adapter from errors to a one-line message and an exit code.

    A :class:`~facegate.errors.FacegateError` exits with its own code; an optional
    dependency that is not installed (torch, fastapi, ...) with 6, as an unavailable
    model does; with ``bad_input``, a file or value that cannot be used
    (``FileNotFoundError``, ``ValueError``) with 2, a usage error. Anything else is
    left to the group's "unexpected error" (70).
    """
    try:
        yield
    except ImportError as exc:
        error = missing_extra(exc)
        if error is None:
            raise
        _exit(as_json, error)
    except FacegateError as exc:
        _exit(as_json, exc)
    except (FileNotFoundError, ValueError) as exc:
        if not bad_input:
            raise
        _exit(as_json, exc, EXIT_USAGE)


def _exit(as_json: bool, exc: Exception, code: int | None = None) -> None:
    code = getattr(exc, "exit_code", EXIT_USAGE) if code is None else code
    if as_json:
        click.echo(json.dumps({"error": type(exc).__name__, "message": str(exc), "exit_code": code}, indent=2))
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(code)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)
