"""Where facegate keeps the user's files, in one place (the XDG base directories).

- :func:`config_dir`: ``$XDG_CONFIG_HOME/facegate`` (``~/.config/facegate``): the
  operator's calibrations (``thresholds.json``);
- :func:`data_dir`: ``$XDG_DATA_HOME/facegate`` (``~/.local/share/facegate``): the
  default gallery;
- :func:`cache_dir`: ``$FACEGATE_CACHE``, else ``$XDG_CACHE_HOME/facegate``
  (``~/.cache/facegate``), one sub-folder per kind of thing kept: ``embeddings``
  (evaluation runs), ``onnx`` (converted networks), ``omniglot`` (decoded data),
  ``indexes`` (the in-process indexes of server galleries).

Files that callers name themselves (``$FACEGATE_GALLERY``, ``$FACEGATE_THRESHOLDS``)
come from :func:`env_path`. Nothing here creates a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the environment variable that moves every cache of facegate (the folder that holds ``embeddings/``, ``onnx/`` ...)
CACHE_ENV = "FACEGATE_CACHE"


def env_path(name: str) -> Path | None:
    """The path in environment variable ``name`` (``~`` expanded), or None when it is unset or empty."""
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _xdg(variable: str, default: str) -> Path:
    return (env_path(variable) or Path.home() / default) / "facegate"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/facegate``, by default ``~/.config/facegate``."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def data_dir() -> Path:
    """``$XDG_DATA_HOME/facegate``, by default ``~/.local/share/facegate``."""
    return _xdg("XDG_DATA_HOME", ".local/share")


def cache_dir(kind: str) -> Path:
    """The cache folder for ``kind``: ``$FACEGATE_CACHE/<kind>``, else ``$XDG_CACHE_HOME/facegate/<kind>``."""
    return (env_path(CACHE_ENV) or _xdg("XDG_CACHE_HOME", ".cache")) / kind
