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

from facegate.errors import FacegateError

EXIT_YES = 0
EXIT_NO = 1
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


@contextmanager
def errors_to_exit(as_json: bool) -> Iterator[None]:
    """Turn a FacegateError into a one-line message and its exit code."""
    try:
        yield
    except FacegateError as exc:
        if as_json:
            payload = {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
            click.echo(json.dumps(payload, indent=2))
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)
