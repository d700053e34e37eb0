"""The CLI: exit codes and JSON output, on synthetic faces (stand-in model)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from facegate.cli import main

from .conftest import DEEPFACE_VERIFY_KEYS, solid

FAKE = ["--model", "mean-colour", "--detector", "flat", "--threshold", "0.1"]


@pytest.fixture
def photos(tmp_path):
    paths = {}
    for name, rgb in {
        "red": (200, 20, 20),
        "red2": (190, 25, 25),
        "green": (20, 200, 20),
        "blue": (20, 20, 200),
        "black": (0, 0, 0),
    }.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(solid(rgb)).save(paths[name])
    paths["junk"] = tmp_path / "junk.jpg"
    paths["junk"].write_bytes(b"this is not a jpeg")
    return paths


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGATE_GALLERY", str(tmp_path / "gallery.sqlite"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_enroll_verify_identify_exit_codes(run, photos):
    assert run("enroll", "red", photos["red"], *FAKE).exit_code == 0
    assert run("enroll", "green", photos["green"], *FAKE).exit_code == 0

    ok = run("verify", photos["red2"], "--as", "red", *FAKE)
    assert ok.exit_code == 0 and "It's red, welcome in!" in ok.output
    no = run("verify", photos["green"], "--as", "red", *FAKE)
    assert no.exit_code == 1 and "It's not red, please go away" in no.output

    who = run("identify", photos["red2"], *FAKE)
    assert who.exit_code == 0 and who.output.startswith("It's red, the distance is")
    stranger = run("identify", photos["blue"], *FAKE)
    assert stranger.exit_code == 1 and stranger.output.strip() == "Not in the database."


def test_json_output_on_every_command(run, photos):
    enrolled = json.loads(run("enroll", "red", photos["red"], "--json", *FAKE).output)
    assert enrolled["name"] == "red" and enrolled["templates_added"] == 1
    verified = json.loads(run("verify", photos["red2"], "--as", "red", "--json", *FAKE).output)
    assert set(verified) >= DEEPFACE_VERIFY_KEYS
    assert verified["verified"] is True and verified["model"] == "mean-colour"
    who = json.loads(run("identify", photos["red2"], "--json", *FAKE).output)
    assert who["identity"] == "red" and who["candidates"][0]["name"] == "red"
    listed = json.loads(run("people", "--json", *FAKE).output)
    assert listed["people"][0]["name"] == "red" and listed["model"] == "mean-colour"
    renamed = json.loads(run("rename", "red", "scarlet", "--json", *FAKE).output)
    assert renamed == {"old": "red", "new": "scarlet"}
    removed = json.loads(run("remove", "scarlet", "--json", *FAKE).output)
    assert removed["templates_removed"] == 1
    assert json.loads(run("people", "--json", *FAKE).output)["people"] == []


def test_errors_have_their_own_exit_codes(run, photos):
    no_face = run("enroll", "black", photos["black"], *FAKE)
    assert no_face.exit_code == 3 and "no face found" in no_face.output
    bad = run("enroll", "junk", photos["junk"], "--json", *FAKE)
    assert bad.exit_code == 4 and json.loads(bad.output)["error"] == "ImageError"
    unknown = run("verify", photos["red"], "--as", "nobody", *FAKE)
    assert unknown.exit_code == 5 and "not enrolled" in unknown.output
    run("enroll", "red", photos["red"], *FAKE)
    dup = run("enroll", "red", photos["red2"], *FAKE)
    assert dup.exit_code == 5
    assert run("enroll", "red", photos["red2"], "--add", *FAKE).exit_code == 0
    assert run("identify", photos["red"], "--detector", "nonsense").exit_code == 2


def test_failed_enroll_changes_nothing(run, photos):
    run("enroll", "red", photos["red"], *FAKE)
    assert run("enroll", "green", photos["green"], photos["black"], *FAKE).exit_code == 3
    people = json.loads(run("people", "--json", *FAKE).output)["people"]
    assert [p["name"] for p in people] == ["red"]


def test_model_mismatch_is_refused(run, photos):
    run("enroll", "red", photos["red"], *FAKE)
    mixed = run("identify", photos["red"], "--model", "pixels", "--json")
    assert mixed.exit_code == 5 and json.loads(mixed.output)["error"] == "ModelMismatchError"


def test_enroll_dir_reports_failures(run, photos, tmp_path):
    root = tmp_path / "people"
    for name, files in {"red": ["red", "red2"], "green": ["green", "black"], "blue": ["blue"]}.items():
        (root / name).mkdir(parents=True)
        for f in files:
            (root / name / f"{f}.png").write_bytes(photos[f].read_bytes())
    result = run("enroll-dir", root, "--json", *FAKE)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["enrolled"] == {"blue": 1, "red": 2} and "green" in report["failed"]


def test_compare_two_photos(run, photos):
    same = run("compare", photos["red"], photos["red2"], *FAKE[:4], "--threshold", "0.1")
    assert same.exit_code == 0 and same.output.startswith("Same person")
    diff = run("compare", photos["red"], photos["green"], *FAKE[:4], "--threshold", "0.1", "--json")
    assert diff.exit_code == 1 and json.loads(diff.output)["verified"] is False
