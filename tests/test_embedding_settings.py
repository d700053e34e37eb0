"""What made an embedding is recorded, and a gallery refuses to mix embeddings made otherwise."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from facegate.detection.base import FacialArea
from facegate.errors import ModelMismatchError
from facegate.gallery import Gallery
from facegate.models.engines import source_digest
from facegate.pipeline import EmbeddingSettings, prominence, represent, select_faces
from tests.conftest import data_dir

YOUNES = ("happyhouse", "images", "younes.jpg")
WEIGHTS = "sha256:" + source_digest()[:16]


def _meta(path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())


def test_the_default_settings_name_model_weights_flip_and_the_onnx_engine(monkeypatch):
    monkeypatch.delenv("FACEGATE_ENGINE", raising=False)
    assert EmbeddingSettings.of("dlib-resnet", True).to_dict() == {
        "model": "dlib-resnet",
        "tta": "flip",
        "engine": "onnx",
        "weights": WEIGHTS,
    }
    assert EmbeddingSettings.of("dlib-resnet", False).tta == "none"
    assert EmbeddingSettings.of("pixels", True).to_dict() == {
        "model": "pixels",
        "tta": "flip",
        "engine": "numpy",
        "weights": None,
    }


def test_a_face_and_its_results_say_which_engine_and_augmentation_made_them(tmp_path):
    photo = data_dir(*YOUNES)
    face = represent(photo, tta=False)[0]
    assert (face.engine, face.tta) == ("onnx", "none")
    assert {k: face.to_dict()[k] for k in ("model", "engine", "tta")} == {
        "model": "dlib-resnet",
        "engine": "onnx",
        "tta": "none",
    }
    with Gallery(tmp_path / "g.sqlite") as gallery:
        gallery.enroll("younes", [photo])
        door = gallery.verify_identity(photo, "younes").to_dict()
        who = gallery.identify(photo).to_dict()
    assert (door["engine"], door["tta"], who["engine"], who["tta"]) == ("onnx", "flip", "onnx", "flip")


def test_a_new_gallery_records_its_settings_and_each_template_what_made_it(tmp_path):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as gallery:
        gallery.enroll("younes", [data_dir(*YOUNES)])
    meta = _meta(path)
    assert {k: meta[k] for k in ("model", "tta", "engine", "weights", "schema_version")} == {
        "model": "dlib-resnet",
        "tta": "flip",
        "engine": "onnx",
        "weights": WEIGHTS,
        "schema_version": "3",
    }
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT engine, tta FROM templates").fetchall() == [("onnx", "flip")]


def test_a_gallery_refuses_another_augmentation_and_says_which_setting_differs(tmp_path):
    path = tmp_path / "g.sqlite"
    Gallery(path, tta=True).close()
    with pytest.raises(ModelMismatchError) as caught:
        Gallery(path, tta=False)
    assert "tta: 'flip' in the gallery, 'none' here" in str(caught.value)
    assert "enroll into a new gallery" in str(caught.value)


def test_a_gallery_opened_without_settings_uses_its_own(tmp_path):
    path = tmp_path / "g.sqlite"
    Gallery(path, tta=False).close()
    with Gallery(path) as gallery:
        assert gallery.tta is False
        assert gallery.settings.tta == "none"


def test_a_gallery_refuses_other_weights_under_the_same_model_name(tmp_path):
    path = tmp_path / "g.sqlite"
    Gallery(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'sha256:0123456789abcdef' WHERE key = 'weights'")
    expected = f"weights: 'sha256:0123456789abcdef' in the gallery, '{WEIGHTS}' here"
    with pytest.raises(ModelMismatchError, match=expected):
        Gallery(path)


def test_the_engine_is_recorded_but_either_engine_opens_the_gallery(tmp_path, monkeypatch):
    from facegate.models import MODELS

    path = tmp_path / "g.sqlite"
    monkeypatch.setenv("FACEGATE_ENGINE", "dlib")
    MODELS.clear_shared()  # models are built once per process: build them again with this engine
    with Gallery(path) as gallery:
        assert gallery.settings.engine == "dlib"
    monkeypatch.setenv("FACEGATE_ENGINE", "onnx")
    MODELS.clear_shared()
    with Gallery(path) as gallery:  # the same network: dlib's and ONNX Runtime's descriptors agree to 1e-6
        assert gallery.settings.engine == "onnx"
    assert _meta(path)["engine"] == "dlib"  # what created it


def test_a_version_1_gallery_is_upgraded_and_learns_this_sessions_settings(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
            CREATE TABLE templates (id INTEGER PRIMARY KEY,
                person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE, embedding BLOB NOT NULL,
                model TEXT NOT NULL, image_sha256 TEXT NOT NULL, box TEXT NOT NULL, created_at TEXT NOT NULL,
                UNIQUE (person_id, image_sha256));
            INSERT INTO meta VALUES ('model', 'dlib-resnet'), ('dim', '128'), ('schema_version', '1'),
                ('created_at', '2026-01-01T00:00:00+00:00');
            INSERT INTO people VALUES (1, 'ada', '2026-01-01T00:00:00+00:00');
            """
        )
        vector = np.full(128, 128**-0.5, dtype=np.float32)
        db.execute("INSERT INTO templates VALUES (1, 1, ?, 'dlib-resnet', 'abc', '{}', '2026')", (vector.tobytes(),))
    with Gallery(path) as gallery:
        assert "ada" in gallery
    meta = _meta(path)
    assert (meta["schema_version"], meta["tta"], meta["weights"]) == ("3", "flip", WEIGHTS)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT engine, tta FROM templates").fetchall() == [(None, None)]  # unknown, not guessed


def _face(x: int, y: int, w: int) -> FacialArea:
    return FacialArea(x, y, w, w, 1.0, np.zeros((5, 2), np.float32))


def test_the_main_face_is_the_largest_weighted_by_nearness_to_the_centre():
    shape = (400, 400, 3)
    centre, corner = _face(170, 170, 60), _face(0, 0, 100)
    # 100x100 in the corner: 2.8x the area, but 0.35 of the diagonal off centre: weight exp(-2.7)
    assert prominence(corner, shape) / prominence(centre, shape) == pytest.approx(
        (100 * 100 * np.exp(-((np.hypot(150, 150) / np.hypot(400, 400) / 0.15) ** 2) / 2)) / (60 * 60)
    )
    assert prominence(centre, shape) == 60 * 60  # dead centre: its area
    faces = sorted([corner, centre], key=lambda f: prominence(f, shape), reverse=True)
    assert select_faces(faces, "main") == [centre]
    assert select_faces(faces, "largest") == [corner]
    with pytest.raises(ValueError, match="use main, largest, all or error"):
        select_faces(faces, "biggest")  # type: ignore[arg-type]


def test_the_command_line_chooses_the_engine_and_threads_for_every_process(tmp_path):
    import json
    import os
    import subprocess
    import sys

    photo = data_dir(*YOUNES)
    cli = [sys.executable, "-c", "from facegate.cli import main; main()"]
    env = {k: v for k, v in os.environ.items() if k not in ("FACEGATE_ENGINE", "FACEGATE_ONNX_THREADS")}
    run = subprocess.run(
        [*cli, "--engine", "dlib", "--threads", "2", "represent", str(photo)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(line["engine"], line["tta"]) for line in lines] == [("dlib", "flip")]
    models = subprocess.run(
        [*cli, "--threads", "2", "models"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "2 thread(s) per process" in models.stdout
