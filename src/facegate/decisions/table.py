"""Where the decision curves and thresholds come from, per (model, metric).

The packaged table (``facegate/data/thresholds.json``) holds, for each built-in model
and metric, :class:`~facegate.decisions.curves.FmrCurve` s measured by
``scripts/calibrate_thresholds.py`` on every cross-identity pair of LFW View 1's
training people, one per kind of score (``scores``: plain distances, and distances
normalised against a cohort), with their provenance. A user file
(``$FACEGATE_THRESHOLDS``, default ``~/.config/facegate/thresholds.json``), written by
``facegate calibrate``, overrides it entry by entry, with a curve of its own or a
fixed threshold. A caller's explicit
``threshold=`` overrides both. A model with neither (a network you trained yourself)
may bring its own threshold
(:meth:`~facegate.models.base.EmbeddingModel.own_threshold`).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facegate.errors import FacegateError
from facegate.paths import config_dir, env_path

if TYPE_CHECKING:  # pragma: no cover
    from facegate.models.base import EmbeddingModel

PACKAGED = "thresholds.json"
#: the false-match rate a 1:1 decision allows unless the operator says otherwise
#: (NIST SP 800-63B asks at most 1 in 1,000 of a biometric verifier)
DEFAULT_FMR = 1e-3
#: the share of strangers an identification may name as someone, unless told otherwise
DEFAULT_FPIR = 1e-2


class ThresholdUnavailableError(FacegateError):
    """No calibrated threshold exists for this (model, metric)."""

    exit_code = 2


def user_file() -> Path:
    """``$FACEGATE_THRESHOLDS``, else ``thresholds.json`` in :func:`facegate.paths.config_dir`."""
    return env_path("FACEGATE_THRESHOLDS") or config_dir() / "thresholds.json"


@cache
def packaged_table() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("facegate").joinpath("data", PACKAGED).read_text(encoding="utf-8")
    return json.loads(text)["thresholds"]


def _user_table() -> dict[str, dict[str, dict[str, Any]]]:
    path = user_file()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("thresholds", {})
    except (OSError, ValueError) as exc:
        raise FacegateError(f"cannot read the threshold file {path}: {exc}") from exc


def threshold_entry(model: str | EmbeddingModel, metric: str) -> dict[str, Any]:
    """The table entry for (model, metric): the user's, else the packaged one, else the
    threshold the model's weights came with. An entry holds curves (``scores``) or a
    fixed ``threshold``, and says how it was calibrated. ``model`` is a registry name or
    an instance (whose own threshold is then its weights')."""
    name = model if isinstance(model, str) else model.name
    for table in (_user_table(), packaged_table()):
        entry = table.get(name, {}).get(metric)
        if entry is not None:
            return entry
    own = _model_threshold(model, metric)
    if own is not None:
        return {"threshold": own, "calibrated_on": f"{name}'s own validation data"}
    raise ThresholdUnavailableError(
        f"no calibrated threshold for model {name!r} with metric {metric!r}; "
        "pass threshold=... or run `facegate calibrate`"
    )


def _model_threshold(model: str | EmbeddingModel, metric: str) -> float | None:
    from facegate.models import get_model

    try:
        value = get_model(model).own_threshold(metric)
    except FacegateError:  # unknown model, or one without weights: no threshold of its own
        return None
    return None if value is None else float(value)


def save_entry(model: str, metric: str, entry: dict[str, Any]) -> Path:
    """Record a calibration (a fixed ``threshold`` or ``scores`` curves) in the user file, atomically."""
    path = user_file()
    data: dict[str, Any] = {"thresholds": _user_table()}
    data["thresholds"].setdefault(model, {})[metric] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def save_threshold(model: str, metric: str, value: float, **details: Any) -> Path:
    """Record a fixed calibrated threshold in the user file and return its path."""
    return save_entry(model, metric, {"threshold": float(value), **details})
