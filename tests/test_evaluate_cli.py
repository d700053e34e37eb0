"""``facegate evaluate`` and ``facegate calibrate`` through click, on synthetic and real data.

The synthetic set uses the conftest stand-ins (``flat`` detector, ``mean-colour``
model): each "person" is a colour, each photo that colour plus noise, so the whole
flow runs in seconds. A black photo has no face (failure to enrol).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facegate.cli.calibrate import calibrate
from facegate.cli.evaluate import evaluate
from tests.conftest import data_dir

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAKE = ["--model", "mean-colour", "--detector", "flat", "--workers", "1"]
COLOURS = {
    "Ann_A": (200, 40, 40),
    "Bob_B": (40, 200, 40),
    "Cid_C": (40, 40, 200),
    "Dee_D": (200, 200, 40),
    "Eve_E": (40, 200, 200),
    "Fay_F": (200, 40, 200),
}


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as im:
        im.load()
        assert im.size[0] > 100 and im.size[1] > 100


@pytest.fixture(scope="module")
def colour_set(tmp_path_factory) -> Path:
    """LFW-style folder: <Name>/<Name>_NNNN.png, 6 photos per person, one black (faceless) photo."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir()
        for i in range(1, 7):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 12, size=(24, 24, 3)), 1, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i:04d}.png")
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(root / "Ann_A" / "Ann_A_0006.png")
    return root


@pytest.fixture(scope="module")
def colour_pairs(colour_set, tmp_path_factory) -> Path:
    """An LFW View 2 style pair file (2 folds of 6 genuine + 6 impostor pairs); file names are .png here."""
    names = list(COLOURS)
    lines = ["2\t6"]
    for fold in range(2):
        lines += [f"{n}\t{1 + fold}\t{3 + 3 * fold}" for n in names]  # fold 1 uses the black Ann_A_0006
        lines += [f"{names[i]}\t{6 - fold}\t{names[(i + 1 + fold) % 6]}\t{2 + fold}" for i in range(6)]
    path = tmp_path_factory.mktemp("pairs") / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def private_thresholds(tmp_path, monkeypatch):
    """Never touch the user's threshold file."""
    monkeypatch.setenv("FACEGATE_THRESHOLDS", str(tmp_path / "thresholds.json"))


def _lfw_png(monkeypatch):
    # the synthetic set stores PNGs; LFW names end in .jpg
    import facegate.datasets.lfw as lfw

    monkeypatch.setattr(lfw, "image_path", lambda name, number: f"{name}/{name}_{int(number):04d}.png")


def test_pairs_command_writes_report_and_plots(colour_set, colour_pairs, tmp_path, monkeypatch):
    _lfw_png(monkeypatch)
    out = tmp_path / "out"
    args = ["pairs", str(colour_pairs), "--images", str(colour_set), *FAKE, "--cache", str(tmp_path / "c")]
    run = CliRunner().invoke(evaluate, [*args, "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert "accuracy (2-fold, folds of the pair file)" in run.output
    assert "FNMR @ FMR=0.01" in run.output and "n/a: needs ≥ 100 impostor pairs, has 12" in run.output
    report = json.loads((out / "report.json").read_text())
    (result,) = report["results"]
    # Ann_A_0006 is black: its pairs count as errors, never silently dropped
    assert result["failure_to_enrol"]["images"] == 1
    assert result["failure_to_enrol"]["pairs_counted_as_errors"] >= 1
    assert result["pairs"] == {"genuine": 12, "impostor": 12}
    errors = result["failure_to_enrol"]["pairs_counted_as_errors"]
    assert result["accuracy"]["mean"] <= 1 - errors / 24 + 1e-9
    assert result["accuracy"]["mean"] >= 0.85
    assert len(result["accuracy"]["folds"]) == 2
    md = (out / "report.md").read_text()
    assert "| AUC |" in md and "roc.png" in md
    for name in ("roc.png", "pairs.png", "distances.png"):
        assert_png(out / name)


def test_pairs_command_second_run_uses_the_cache(colour_set, colour_pairs, tmp_path, monkeypatch):
    _lfw_png(monkeypatch)
    import facegate.evaluate.cache as cache

    args = ["pairs", str(colour_pairs), "--images", str(colour_set), *FAKE, "--cache", str(tmp_path / "c")]
    assert CliRunner().invoke(evaluate, [*args, "--out", str(tmp_path / "a")]).exit_code == 0
    calls = []
    monkeypatch.setattr(cache, "represent_many", lambda *a, **k: calls.append(a) or [])
    run = CliRunner().invoke(evaluate, [*args, "--metric", "cosine", "--out", str(tmp_path / "b")])
    assert run.exit_code == 0, run.output
    assert calls == []  # nothing embedded again
    assert "mean-colour/flat/cosine" in run.output


def test_pairs_command_compares_models_on_one_roc(colour_set, tmp_path):
    from facegate.datasets.folders import load_folder
    from facegate.datasets.pairs import make_pairs, write_pairs

    pairs = write_pairs(make_pairs(load_folder(colour_set), n_genuine=30, folds=5, seed=0), tmp_path / "p.tsv")
    out = tmp_path / "out"
    args = ["pairs", str(pairs), "--images", str(colour_set), *FAKE, "--model", "pixels", "--no-cache"]
    run = CliRunner().invoke(evaluate, [*args, "--folds", "5", "--out", str(out)])
    assert run.exit_code == 0, run.output
    report = json.loads((out / "report.json").read_text())
    assert [r["system"]["model"] for r in report["results"]] == ["mean-colour", "pixels"]
    assert report["results"][0]["accuracy"]["fold_source"] == "folds of the pair file"
    assert_png(out / "roc.png")
    # and the compare command redraws both from the JSON
    run = CliRunner().invoke(evaluate, ["compare", str(out / "report.json"), "--out", str(tmp_path / "cmp.png")])
    assert run.exit_code == 0, run.output
    assert run.output.count("accuracy") == 2
    assert_png(tmp_path / "cmp.png")


def test_identify_command(colour_set, tmp_path):
    out = tmp_path / "out"
    args = ["identify", str(colour_set), "--folds", "2", *FAKE, "--no-cache", "--out", str(out)]
    run = CliRunner().invoke(evaluate, args)
    assert run.exit_code == 0, run.output
    report = json.loads((out / "report.json").read_text())
    (result,) = report["results"]
    assert report["dataset"] == {"folder": str(colour_set), "layout": "person-folders", "people": 6, "images": 36}
    # every probe but the black photo is found at rank 1
    assert result["rank1"] == pytest.approx(35 / 36)
    assert result["failure_to_enrol"]["images"] == 1
    assert result["open_set"]["unknown_people"] == 3
    for name in ("cmc.png", "distances.png"):
        assert_png(out / name)


def test_identify_people_option_and_errors(colour_set, tmp_path):
    run = CliRunner().invoke(
        evaluate, ["identify", str(colour_set), "--people", "4", *FAKE, "--no-cache", "--out", str(tmp_path)]
    )
    assert run.exit_code == 0, run.output
    assert json.loads((tmp_path / "report.json").read_text())["dataset"]["people"] == 4
    run = CliRunner().invoke(evaluate, ["identify", str(colour_set), "--people", "1", *FAKE, "--out", str(tmp_path)])
    assert run.exit_code != 0 and "fewer than 2 people" in run.output
    run = CliRunner().invoke(
        evaluate, ["identify", str(colour_set), "--model", "no-such-model", "--out", str(tmp_path)]
    )
    assert run.exit_code == 2 and "unknown model" in run.output


def test_pairs_command_reports_missing_images(colour_pairs, tmp_path):
    run = CliRunner().invoke(evaluate, ["pairs", str(colour_pairs), "--images", str(tmp_path), *FAKE])
    assert run.exit_code != 0
    assert "no such image file" in run.output


def test_calibrate_on_a_folder_saves_the_threshold(colour_set, tmp_path):
    from facegate.decisions import find_threshold
    from facegate.decisions.table import threshold_entry

    out = tmp_path / "out"
    args = [str(colour_set), *FAKE, "--target-fmr", "0.01", "--no-cache", "--out", str(out)]
    run = CliRunner().invoke(calibrate, args)
    assert run.exit_code == 0, run.output
    assert "measured FMR" in run.output and "saved:" in run.output
    t = find_threshold("mean-colour", "euclidean")
    entry = threshold_entry("mean-colour", "euclidean")
    assert entry["target_fmr"] == 0.01 and entry["fmr"] <= 0.01
    assert entry["impostor_pairs"] == 36 * 35 // 2 - 6 * 15
    data = json.loads((out / "report.json").read_text())
    assert data["calibration"]["threshold"] == pytest.approx(t)
    assert_png(out / "roc.png")
    # colours are far apart: the threshold separates (almost) every genuine pair
    assert data["calibration"]["fnmr"] <= 0.2


def test_calibrate_refuses_an_unmeasurable_fmr(colour_set, colour_pairs, tmp_path, monkeypatch):
    _lfw_png(monkeypatch)
    args = [str(colour_pairs), "--images", str(colour_set), *FAKE, "--no-cache", "--out", str(tmp_path)]
    run = CliRunner().invoke(calibrate, [*args, "--target-fmr", "0.001"])
    assert run.exit_code == 2
    assert "needs at least 1000 impostor pairs" in run.output
    run = CliRunner().invoke(calibrate, [str(colour_pairs), *FAKE])
    assert run.exit_code != 0 and "--images" in run.output


# -- real data: LFW View 1 DevTest through the CLI -------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_lfw_dev_test_through_the_cli(lfw_dev_test, embedding_cache, tmp_path):
    lfw, _pairs, embedded = lfw_dev_test  # embeds once per session, shared with the lead's accuracy test
    out = tmp_path / "lfw"
    args = ["pairs", str(lfw / "pairsDevTest.txt"), "--images", str(lfw / "images"), "--cache", str(embedding_cache)]
    run = CliRunner().invoke(evaluate, [*args, "--out", str(out)])
    assert run.exit_code == 0, run.output
    report = json.loads((out / "report.json").read_text())
    (result,) = report["results"]
    print(run.output)
    assert result["pairs"] == {"genuine": 500, "impostor": 500}
    assert result["failure_to_enrol"]["images"] == embedded.n_failed
    assert result["accuracy"]["mean"] >= 0.985
    assert len(result["accuracy"]["folds"]) == 10
    assert result["auc"] >= 0.99
    assert result["eer"]["rate"] <= 0.02
    by_target = {p["target_fmr"]: p for p in result["fnmr_at_fmr"]}
    assert by_target[0.01]["fnmr"] is not None and by_target[0.01]["fnmr"] <= 0.05
    assert by_target[0.001]["fnmr"] is None and "needs ≥ 1000" in by_target[0.001]["note"]
    for name in ("roc.png", "pairs.png", "distances.png"):
        assert_png(out / name)


@pytest.mark.data
def test_lfw_data_present():
    lfw = data_dir("lfw")
    assert (lfw / "pairsDevTest.txt").is_file()


def test_make_pairs_then_evaluate_a_folder_set(colour_set, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    run = CliRunner().invoke(evaluate, ["make-pairs", str(colour_set), "--out", str(pairs), "--folds", "3"])
    assert run.exit_code == 0, run.output
    assert "90 genuine + 90 impostor pairs from 6 people" in run.output
    run = CliRunner().invoke(
        evaluate, ["pairs", str(pairs), "--images", str(colour_set), *FAKE, "--no-cache", "--out", str(tmp_path / "o")]
    )
    assert run.exit_code == 0, run.output
    assert "accuracy (3-fold, folds of the pair file)" in run.output


def test_calibrate_saves_every_metric_and_writes_no_report_unless_asked(colour_set, tmp_path, monkeypatch):
    from facegate.decisions import find_threshold
    from facegate.decisions.table import threshold_entry

    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(calibrate, [str(colour_set), *FAKE, "--target-fmr", "0.01", "--no-cache"])
    assert run.exit_code == 0, run.output
    assert not (tmp_path / "facegate-report").exists()
    assert "verify and the gallery now decide with them" in run.output
    for metric in ("euclidean", "euclidean_l2", "cosine"):
        entry = threshold_entry("mean-colour", metric)
        assert entry["target_fmr"] == 0.01 and entry["scores"]["distance"]["curve"]["n_impostor"] > 0
        assert find_threshold("mean-colour", metric) == pytest.approx(entry["threshold"])
        # measured on the folder's own people: photos of one colour are one template's worth
        effect = entry["scores"]["distance"]["template_effect"]
        assert set(effect) == {"1", "2", "3", "4", "5"} and effect["3"] < 3
        assert entry["scores"]["distance"]["gallery_effect"] == {"1": 1.0}  # 6 people: too few to measure


def test_compare_refuses_an_identification_report_as_a_usage_error(colour_set, tmp_path):
    out = tmp_path / "out"
    CliRunner().invoke(evaluate, ["identify", str(colour_set), "--folds", "2", *FAKE, "--no-cache", "--out", str(out)])
    run = CliRunner().invoke(evaluate, ["compare", str(out / "report.json"), "--out", str(tmp_path / "roc.png")])
    assert run.exit_code == 2 and "holds an 'identification' report" in run.output
