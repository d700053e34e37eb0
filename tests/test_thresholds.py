"""Where a decision threshold comes from: caller, user file, packaged table, the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facegate.decisions import find_threshold
from facegate.decisions.table import (
    ThresholdUnavailableError,
    packaged_table,
    save_threshold,
    threshold_entry,
)
from facegate.detection.base import FacialArea
from facegate.errors import ModelUnavailableError
from facegate.models import MODELS, EmbeddingModel

if "own-threshold" not in MODELS:

    @MODELS.register("own-threshold")
    class OwnThreshold(EmbeddingModel):
        """A model whose weights came with a euclidean threshold of 0.25."""

        name = "own-threshold"
        dim = 2
        normalized = False

        def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
            return image

        def embed(self, chips: list[np.ndarray]) -> np.ndarray:
            return np.zeros((len(chips), 2), np.float32)

        def own_threshold(self, metric: str) -> float | None:
            return 0.25 if metric == "euclidean" else None

    @MODELS.register("no-weights")
    class NoWeights(OwnThreshold):
        name = "no-weights"

        def __init__(self) -> None:
            raise ModelUnavailableError("no weights here")


@pytest.fixture(autouse=True)
def empty_user_file(tmp_path, monkeypatch):
    path = tmp_path / "thresholds.json"
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(path))
    return path


def test_packaged_curve_gives_the_default_models_threshold_at_fmr_1e3():
    points = {p["fmr"]: p["threshold"] for p in _distance_curve().operating_points()}
    assert find_threshold("dlib-resnet", "euclidean") == pytest.approx(points[1e-3], abs=1e-4)
    assert find_threshold("dlib-resnet", "euclidean", fmr=1e-4) == pytest.approx(points[1e-4], abs=1e-4)
    assert points[1e-4] < points[1e-3] < points[1e-2]


def _distance_curve():
    from facegate.decisions import FmrCurve

    return FmrCurve.from_dict(packaged_table()["dlib-resnet"]["euclidean"]["scores"]["distance"]["curve"])


def test_model_threshold_is_the_last_resort():
    entry = threshold_entry("own-threshold", "euclidean")
    assert entry["threshold"] == 0.25 and "own validation" in entry["calibrated_on"]
    with pytest.raises(ThresholdUnavailableError, match="cosine"):
        find_threshold("own-threshold", "cosine")


def test_user_calibration_and_caller_beat_the_model(empty_user_file):
    save_threshold("own-threshold", "euclidean", 0.4, calibrated_on="my photos")
    assert json.loads(empty_user_file.read_text())["thresholds"]["own-threshold"]["euclidean"]["threshold"] == 0.4
    assert find_threshold("own-threshold", "euclidean") == 0.4
    assert find_threshold("own-threshold", "euclidean", override=0.1) == 0.1


def test_model_that_cannot_load_has_no_threshold():
    with pytest.raises(ThresholdUnavailableError, match="no-weights"):
        find_threshold("no-weights", "euclidean")
    with pytest.raises(ThresholdUnavailableError, match="unknown-model"):
        find_threshold("unknown-model", "euclidean")
