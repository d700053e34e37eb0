"""The CLI: exit codes and JSON output, on synthetic faces (stand-in model)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from facegate.cli import main

from .conftest import DEEPFACE_VERIFY_KEYS, solid

FAKE = ["--model", "mean-colour", "--detector", "flat", "--threshold", "0.1"]
#: what commands that only embed (enroll) take of FAKE
EMBED = FAKE[:4]


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
    assert run("enroll", "red", photos["red"], *EMBED).exit_code == 0
    assert run("enroll", "green", photos["green"], *EMBED).exit_code == 0

    ok = run("verify", photos["red2"], "--as", "red", *FAKE)
    assert ok.exit_code == 0 and "It's red, welcome in!" in ok.output
    no = run("verify", photos["green"], "--as", "red", *FAKE)
    assert no.exit_code == 1 and "It's not red, please go away" in no.output

    who = run("identify", photos["red2"], *FAKE)
    assert who.exit_code == 0 and who.output.startswith("It's red, the distance is")
    stranger = run("identify", photos["blue"], *FAKE)
    assert stranger.exit_code == 1 and stranger.output.strip() == "Not in the database."


def test_json_output_on_every_command(run, photos):
    enrolled = json.loads(run("enroll", "red", photos["red"], "--json", *EMBED).output)
    assert enrolled["name"] == "red" and enrolled["templates_added"] == 1
    verified = json.loads(run("verify", photos["red2"], "--as", "red", "--json", *FAKE).output)
    assert set(verified) >= DEEPFACE_VERIFY_KEYS
    assert verified["verified"] is True and verified["model"] == "mean-colour"
    who = json.loads(run("identify", photos["red2"], "--json", *FAKE).output)
    assert who["identity"] == "red" and who["candidates"][0]["name"] == "red"
    listed = json.loads(run("people", "--json").output)
    assert listed["people"][0]["name"] == "red" and listed["model"] == "mean-colour"
    renamed = json.loads(run("rename", "red", "scarlet", "--json").output)
    assert renamed == {"old": "red", "new": "scarlet"}
    removed = json.loads(run("remove", "scarlet", "--json").output)
    assert removed["templates_removed"] == 1
    assert json.loads(run("people", "--json").output)["people"] == []


def test_errors_have_their_own_exit_codes(run, photos):
    no_face = run("enroll", "black", photos["black"], *EMBED)
    assert no_face.exit_code == 3 and "no face found" in no_face.output
    bad = run("enroll", "junk", photos["junk"], "--json", *EMBED)
    assert bad.exit_code == 4 and json.loads(bad.output)["error"] == "InvalidImageError"
    missing = run("enroll", "ghost", photos["red"].with_name("ghost.png"), "--json", *EMBED)
    assert missing.exit_code == 4 and json.loads(missing.output)["error"] == "ImageNotFoundError"
    unknown = run("verify", photos["red"], "--as", "nobody", *FAKE)
    assert unknown.exit_code == 5 and "not enrolled" in unknown.output
    run("enroll", "red", photos["red"], *EMBED)
    dup = run("enroll", "red", photos["red2"], *EMBED)
    assert dup.exit_code == 5
    assert run("enroll", "red", photos["red2"], "--add", *EMBED).exit_code == 0
    assert run("identify", photos["red"], "--detector", "nonsense").exit_code == 2


def test_failed_enroll_changes_nothing(run, photos):
    run("enroll", "red", photos["red"], *EMBED)
    assert run("enroll", "green", photos["green"], photos["black"], *EMBED).exit_code == 3
    people = json.loads(run("people", "--json").output)["people"]
    assert [p["name"] for p in people] == ["red"]


def test_model_mismatch_is_refused(run, photos):
    run("enroll", "red", photos["red"], *EMBED)
    mixed = run("identify", photos["red"], "--model", "pixels", "--json")
    assert mixed.exit_code == 5 and json.loads(mixed.output)["error"] == "ModelMismatchError"


def test_enroll_dir_reports_failures(run, photos, tmp_path):
    root = tmp_path / "people"
    for name, files in {"red": ["red", "red2"], "green": ["green", "black"], "blue": ["blue"]}.items():
        (root / name).mkdir(parents=True)
        for f in files:
            (root / name / f"{f}.png").write_bytes(photos[f].read_bytes())
    result = run("enroll-dir", root, "--json", *EMBED)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["enrolled"] == {"blue": 1, "red": 2} and "green" in report["failed"]


def test_compare_two_photos(run, photos):
    same = run("compare", photos["red"], photos["red2"], *FAKE[:4], "--threshold", "0.1")
    assert same.exit_code == 0 and same.output.startswith("Same person")
    diff = run("compare", photos["red"], photos["green"], *FAKE[:4], "--threshold", "0.1", "--json")
    assert diff.exit_code == 1 and json.loads(diff.output)["verified"] is False


def test_an_unexpected_error_is_never_a_no(run, photos, monkeypatch):
    """A bug exits 70 with one line, not 1 ("no") with a traceback; --debug shows the traceback."""
    from facegate.gallery import Gallery

    run("enroll", "red", photos["red"], *EMBED)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(Gallery, "verify_identity", broken)
    runner = CliRunner()
    crashed = runner.invoke(main, ["verify", str(photos["red"]), "--as", "red", *FAKE])
    assert crashed.exit_code == 70
    assert crashed.output.strip().splitlines() == [
        "facegate: unexpected error (ZeroDivisionError: simulated bug); this is a bug, please report it "
        "with the output of `facegate --debug ...`"
    ]
    debug = runner.invoke(main, ["--debug", "verify", str(photos["red"]), "--as", "red", *FAKE])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_reading_commands_never_create_a_gallery(tmp_path, photos):
    typo = tmp_path / "typo" / "g.sqlite"
    runner = CliRunner()
    for args in (["identify", str(photos["red"])], ["verify", str(photos["red"]), "--as", "red"], ["people"]):
        result = runner.invoke(main, [*args, *(FAKE if args[0] != "people" else []), "--gallery", str(typo)])
        assert result.exit_code == 5 and "there is no gallery at" in result.output
    assert not typo.parent.exists()
    result = runner.invoke(main, ["people", "--gallery", str(photos["red"]) + "/g.sqlite", "--json"])
    assert result.exit_code == 5
