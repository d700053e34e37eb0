"""Integration tests on real photos from ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import facegate
from facegate.cli import main
from facegate.errors import MultipleFacesError, NoFaceError
from facegate.gallery import Gallery

from .conftest import data_dir

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def happyhouse():
    return data_dir("happyhouse", "images")


@pytest.fixture(scope="module")
def examples():
    return data_dir("face_recognition_examples")


def test_happy_house_door_story(happyhouse, tmp_path):
    with Gallery(tmp_path / "office.sqlite") as gallery:
        residents = {p.stem: [p] for p in happyhouse.glob("*.jpg") if not p.stem.startswith("camera_")}
        report = gallery.enroll_many(residents)
        assert {"younes", "kian", "benoit", "bertrand"} <= set(report.enrolled)

        younes = gallery.verify_identity(happyhouse / "camera_0.jpg", "younes")
        assert younes.verified and younes.distance < younes.threshold
        benoit_as_kian = gallery.verify_identity(happyhouse / "camera_2.jpg", "kian")
        assert not benoit_as_kian.verified
        who = gallery.identify(happyhouse / "camera_1.jpg")
        assert who.identity == "bertrand"


def test_demo_command_on_the_happy_house_folder(happyhouse):
    result = CliRunner().invoke(main, ["demo", "--photos", str(happyhouse)])
    assert result.exit_code == 0, result.output
    assert "camera_0.jpg claims to be younes: It's younes, welcome in!" in result.output
    assert "camera_2.jpg claims to be kian: It's not kian, please go away" in result.output
    assert "camera_1.jpg: It's bertrand" in result.output


def test_demo_command_with_packaged_photos():
    result = CliRunner().invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    import json

    steps = json.loads(result.output)["steps"]
    doors = [s for s in steps if s["action"] == "verify"]
    assert [d["verified"] for d in doors] == [True, False]


def test_obama_matches_obama_not_biden(examples):
    images = examples / "tests" / "test_images"
    obama = facegate.represent(images / "obama.jpg")[0].embedding
    others = [facegate.represent(images / n)[0].embedding for n in ("obama2.jpg", "obama3.jpg", "32bit.png")]
    biden = facegate.represent(images / "biden.jpg")[0].embedding
    same = [facegate.distance(obama, o) for o in others]
    assert max(same) < facegate.distance(obama, biden)
    threshold = facegate.verify(images / "obama.jpg", images / "obama2.jpg").threshold
    assert max(same) <= threshold < facegate.distance(obama, biden)
    assert not facegate.verify(images / "obama.jpg", images / "biden.jpg").verified


def test_multi_face_policies(examples):
    photo = examples / "examples" / "two_people.jpg"
    everyone = facegate.represent(photo, multi_face="all")
    assert len(everyone) == 2
    largest = facegate.represent(photo, multi_face="largest")
    assert len(largest) == 1 and largest[0].facial_area.area == max(f.facial_area.area for f in everyone)
    with pytest.raises(MultipleFacesError):
        facegate.represent(photo, multi_face="error")


def test_identify_everyone_in_a_group_photo(examples, tmp_path):
    images = examples / "tests" / "test_images"
    with Gallery(tmp_path / "g.sqlite") as gallery:
        gallery.enroll("obama", [images / "obama.jpg"])
        gallery.enroll("biden", [images / "biden.jpg"])
        found = gallery.identify_all(examples / "examples" / "two_people.jpg")
    assert sorted(r.identity for r in found) == ["biden", "obama"]


def test_partial_faces_are_found_or_refused_never_mismatched(examples):
    images = examples / "tests" / "test_images"
    obama = facegate.represent(images / "obama.jpg")[0].embedding
    biden = facegate.represent(images / "biden.jpg")[0].embedding
    for name in ("obama_partial_face.jpg", "obama_partial_face2.jpg"):
        try:
            face = facegate.represent(images / name)[0]
        except NoFaceError:
            continue  # refusing is honest; matching the wrong person is not
        assert facegate.distance(face.embedding, obama) < facegate.distance(face.embedding, biden)


def test_batched_embeddings_equal_one_at_a_time(examples):
    images = sorted((examples / "tests" / "test_images").glob("*.jpg"))[:4]
    one = [facegate.represent(p)[0].embedding for p in images]
    many = facegate.represent_many(images, batch_size=2, workers=2)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_allclose(a, b[0].embedding, atol=1e-5)


def test_compare_uses_every_face_and_says_which(examples):
    """A group photo against one of its members matches (deepface compares every pair)."""
    group, biden = examples / "examples" / "two_people.jpg", examples / "examples" / "biden.jpg"
    largest = facegate.represent(group)[0].facial_area.to_dict()
    result = facegate.verify(group, biden)
    assert result.verified and result.faces == {"img1": 2, "img2": 1}
    assert result.facial_areas["img1"] != largest  # Biden is the smaller face
    assert result.confidence == 100.0 and result.estimated_fmr < 1e-5
    stranger = facegate.verify(examples / "examples" / "obama.jpg", biden)
    assert not stranger.verified and stranger.confidence == pytest.approx(100 * (1 - stranger.estimated_fmr), abs=0.1)


def test_detect_represent_and_identify_a_folder_from_the_command_line(examples, happyhouse, tmp_path):
    runner = CliRunner()
    group = examples / "examples" / "two_people.jpg"
    found = runner.invoke(main, ["detect", str(group), "--landmarks", "68", "--crops", str(tmp_path / "c"), "--json"])
    assert found.exit_code == 0
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert [r["face"] for r in rows] == [0, 1] and all(len(r["landmarks"]) == 68 for r in rows)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["two_people_face0.png", "two_people_face1.png"]
    assert Image.open(tmp_path / "c" / "two_people_face0.png").size == (150, 150)

    npy = tmp_path / "e.npy"
    embedded = runner.invoke(
        main, ["represent", str(group), str(happyhouse / "younes.jpg"), "--all-faces", "--npy", str(npy)]
    )
    assert embedded.exit_code == 0
    lines = [json.loads(line) for line in embedded.stdout.splitlines()]
    assert [(Path(r["photo"]).name, r["face"]) for r in lines] == [
        ("two_people.jpg", 0),
        ("two_people.jpg", 1),
        ("younes.jpg", 0),
    ]
    assert np.load(npy).shape == (3, 128)
    np.testing.assert_allclose(np.load(npy)[2], lines[2]["embedding"], atol=1e-6)

    gallery = tmp_path / "g.sqlite"
    runner.invoke(main, ["enroll", "younes", str(happyhouse / "younes.jpg"), "--gallery", str(gallery)])
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("camera_0.jpg", "kian.jpg"):
        (folder / name).symlink_to(happyhouse / name)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    table = runner.invoke(main, ["identify", str(folder), "--gallery", str(gallery)])
    assert table.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [(Path(r["photo"]).name, r["identity"]) for r in rows] == [
        ("broken.jpg", ""),
        ("camera_0.jpg", "younes"),
        ("kian.jpg", ""),
    ]
    assert rows[0]["error"].startswith("InvalidImageError") and rows[1]["error"] == ""
