"""Pair scoring, the verification summary, calibration, reports and plots, on synthetic numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegate.datasets.lfw import Pair
from facegate.evaluate.cache import Embedded
from facegate.evaluate.calibration import CalibrationError, calibrate_threshold, save_calibration
from facegate.evaluate.metrics import roc_curve
from facegate.evaluate.plots import SheetPair, hardest_pairs, plot_distance_matrix, plot_pair_sheet, plot_roc
from facegate.evaluate.report import Report, format_table
from facegate.evaluate.verification import fmr_points, score_pairs, verification_metrics

PNG = b"\x89PNG\r\n\x1a\n"
SYSTEM = {"model": "m", "detector": "d", "metric": "euclidean", "tta": False}


def _embedded(root: Path) -> Embedded:
    paths = [str(root / n) for n in ("a1", "a2", "b1", "b2", "c1")]
    vectors = np.array([[0, 0], [0, 0.1], [1, 0], [1, 0.2], [np.nan, np.nan]], dtype=np.float32)
    errors = [None, None, None, None, "NoFaceError: no face"]
    return Embedded(paths, vectors, errors, np.zeros((5, 4), np.int32), "m", "d")


def test_score_pairs_marks_failed_pairs_inf(tmp_path):
    pairs = [Pair("a1", "a2", True), Pair("b1", "b2", True), Pair("a1", "b1", False), Pair("c1", "a1", True)]
    scores = score_pairs(pairs, tmp_path, _embedded(tmp_path), "euclidean")
    np.testing.assert_allclose(scores.distances[:3], [0.1, 0.2, 1.0], atol=1e-6)
    assert np.isinf(scores.distances[3])
    assert scores.failed.tolist() == [False, False, False, True]
    assert scores.labels.tolist() == [1, 1, 0, 1]


def test_verification_summary_counts_failures(tmp_path):
    pairs = [Pair("a1", "a2", True, 0), Pair("a1", "b1", False, 0), Pair("b1", "b2", True, 1)]
    pairs += [Pair("a2", "b2", False, 1), Pair("c1", "a1", True, 1), Pair("c1", "b1", False, 0)]
    scores = score_pairs(pairs, tmp_path, _embedded(tmp_path), "euclidean")
    result = verification_metrics(scores, SYSTEM, {"c1": "NoFaceError"}, n_images=5)
    assert result.failed_pairs == 2
    assert result.fte_rate == pytest.approx(1 / 5)
    assert result.fold_source == "folds of the pair file"
    # the genuine failure is wrong in its fold; the impostor failure too
    assert result.kfold.mean == pytest.approx(np.mean([2 / 3, 2 / 3]))
    assert result.name == "m/d/euclidean"
    d = result.to_dict()
    assert d["failure_to_enrol"]["pairs_counted_as_errors"] == 2
    assert all(p["fnmr"] is None for p in d["fnmr_at_fmr"])  # 3 impostor pairs measure no FMR point
    rows = dict(result.rows())
    assert rows["pairs with a failed image (counted as errors)"] == "2"


def test_single_fold_pairs_get_stratified_folds(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    pairs = [Pair(f"x{i}", f"y{i}", i < n // 2) for i in range(n)]
    paths = [str(tmp_path / f"{k}{i}") for i in range(n) for k in "xy"]
    base = rng.normal(size=(n, 8))
    noise = np.where(np.arange(n)[:, None] < n // 2, 0.1, 3.0) * rng.normal(size=(n, 8))
    vectors = np.stack([base, base + noise], axis=1).reshape(2 * n, 8).astype(np.float32)
    emb = Embedded(paths, vectors, [None] * 2 * n, np.zeros((2 * n, 4), np.int32), "m", "d")
    result = verification_metrics(score_pairs(pairs, tmp_path, emb, "euclidean"), SYSTEM, {}, 2 * n, folds=5)
    assert len(result.kfold.accuracies) == 5
    assert result.fold_source == "stratified, seed 0"
    assert result.kfold.mean == 1.0 and result.auc == 1.0 and result.eer == 0.0
    point = fmr_points(result.scores, (0.01, 0.001))
    assert point[0].fnmr == 0.0 and point[1].fnmr is None and "1000" in point[1].note


def test_calibrate_threshold_meets_the_target():
    rng = np.random.default_rng(0)
    d = np.r_[rng.normal(0.4, 0.1, 2000), rng.normal(0.9, 0.1, 5000)]
    y = np.r_[np.ones(2000), np.zeros(5000)]
    cal = calibrate_threshold(d, y, 1e-3)
    assert cal.fmr <= 1e-3
    assert np.mean(d[y == 0] <= cal.threshold) == pytest.approx(cal.fmr)
    assert np.mean(d[y == 1] > cal.threshold) == pytest.approx(cal.fnmr)
    looser = calibrate_threshold(d, y, 1e-2)
    assert looser.threshold >= cal.threshold and looser.fnmr <= cal.fnmr
    with pytest.raises(CalibrationError, match="10000"):
        calibrate_threshold(d, y, 1e-4)
    with pytest.raises(CalibrationError):
        calibrate_threshold(d, y, 0.0)


def test_save_calibration_feeds_find_threshold(tmp_path, monkeypatch):
    from facegate.decisions import find_threshold
    from facegate.decisions.table import threshold_entry

    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "t.json"))
    d = np.r_[np.linspace(0, 0.5, 100), np.linspace(0.6, 1.0, 1000)]
    y = np.r_[np.ones(100), np.zeros(1000)]
    cal = calibrate_threshold(d, y, 1e-3)
    save_calibration("dlib-resnet", "cosine", cal, dataset="dev")
    assert find_threshold("dlib-resnet", "cosine") == pytest.approx(cal.threshold)
    assert threshold_entry("dlib-resnet", "cosine")["dataset"] == "dev"


def test_report_writes_markdown_and_strict_json(tmp_path):
    report = Report("T", command="facegate evaluate pairs x")
    report.add("sys", [("AUC", "0.99"), ("a|b", "c")])
    report.notes.append("note")
    report.data = {"x": float("inf"), "y": np.float64(0.5), "z": [np.int64(3), float("nan")]}
    md, js = report.write(tmp_path / "r")
    text = md.read_text()
    assert "| AUC | 0.99 |" in text and "a\\|b" in text and "- note" in text
    data = json.loads(js.read_text())
    assert data["x"] is None and data["y"] == 0.5 and data["z"] == [3, None]
    assert format_table([("a", "1"), ("long", "2")], "t").splitlines()[2] == "a     1"


def _valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as im:
        im.load()
        assert im.mode in ("RGBA", "RGB")


def test_plots_are_valid_pngs(tmp_path):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(100), np.zeros(100)]
    curves = [(f"s{k}", roc_curve(np.r_[rng.normal(0, 1, 100), rng.normal(k, 1, 100)], y)) for k in (1, 2, 3)]
    _valid_png(plot_roc(curves, tmp_path / "roc.png"))
    vectors = rng.normal(size=(9, 4))
    vectors[4] = np.nan  # a failed photo is left out
    _valid_png(plot_distance_matrix(vectors, list("aaabbbccc"), "euclidean", tmp_path / "d.png", threshold=1.0))
    img = tmp_path / "face.png"
    Image.fromarray(np.full((20, 16, 3), 90, np.uint8)).save(img)
    sheet = [SheetPair(str(img), str(img), True, 0.1), SheetPair(str(img), str(img), False, np.inf)]
    _valid_png(plot_pair_sheet(sheet, 0.5, tmp_path / "s.png"))


def test_hardest_pairs_put_errors_first():
    pairs = [
        SheetPair("a", "b", True, 0.1),  # right
        SheetPair("a", "b", True, 0.9),  # false non-match, far
        SheetPair("a", "b", False, 0.45),  # false match, close to the threshold
        SheetPair("a", "b", False, 0.05),  # false match, far below
        SheetPair("a", "b", True, np.inf),  # failed
    ]
    order = hardest_pairs(pairs, 0.5, n=4)
    assert order[0].distance == np.inf
    assert [p.distance for p in order[1:]] == [0.05, 0.9, 0.45]
