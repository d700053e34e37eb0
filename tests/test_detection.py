"""Detectors, alignment and the built-in models."""

from __future__ import annotations

import numpy as np
import pytest

import facegate
from facegate.detection import DETECTORS, get_detector
from facegate.detection.base import auto_upsample
from facegate.errors import NoFaceError, UnknownNameError
from facegate.images import load_image
from facegate.models import get_model
from facegate.pipeline import detect_faces, select_faces

from .conftest import data_dir

REAL = ["hog", "cnn", "haar", "hog+cnn"]


@pytest.mark.parametrize("name", REAL)
def test_blank_image_has_no_face(name):
    assert get_detector(name).detect(np.full((120, 120, 3), 128, np.uint8)) == []


def test_skip_detector_takes_the_whole_image():
    faces = get_detector("skip").detect(np.zeros((96, 80, 3), np.uint8))
    assert [(f.x, f.y, f.w, f.h) for f in faces] == [(0, 0, 80, 96)]
    assert faces[0].landmarks.shape == (5, 2)


def test_registry_names_and_errors():
    assert set(DETECTORS.names()) >= {"hog", "cnn", "haar", "skip", "hog+cnn"}
    with pytest.raises(UnknownNameError, match="hog"):
        get_detector("yolo")


def test_upsampling_policy_grows_with_small_images():
    assert auto_upsample(np.zeros((96, 96, 3))) == [0, 1, 2]
    assert auto_upsample(np.zeros((250, 250, 3))) == [0, 1]
    assert auto_upsample(np.zeros((2000, 3000, 3))) == [0]


def test_face_policy():
    with pytest.raises(NoFaceError):
        select_faces([], "largest")
    with pytest.raises(ValueError):
        select_faces([object()], "first")  # type: ignore[list-item]


@pytest.mark.data
@pytest.mark.parametrize("name", REAL)
def test_every_detector_finds_obama_with_landmarks_in_the_box(name):
    image = load_image(data_dir("face_recognition_examples") / "tests" / "test_images" / "obama.jpg")
    faces = detect_faces(image, name)
    assert len(faces) == 1
    face = faces[0]
    assert face.w > 50 and face.h > 50
    x, y = face.landmarks[:, 0], face.landmarks[:, 1]
    assert (x > face.x - 5).all() and (x < face.x + face.w + 5).all()
    assert (y > face.y - 5).all() and (y < face.y + face.h + 5).all()
    assert face.right_eye[0] < face.left_eye[0]  # subject's right eye is on the image's left
    assert set(face.to_dict()) == {"x", "y", "w", "h", "left_eye", "right_eye", "confidence"}


@pytest.mark.data
def test_small_face_needs_upsampling():
    image = load_image(data_dir("happyhouse", "images") / "kian.jpg")  # 96x96
    assert detect_faces(image, "hog", upsample=0) == []
    assert len(detect_faces(image, "hog")) == 1  # found at a higher upsampling level


@pytest.mark.data
@pytest.mark.parametrize("model_name", ["dlib-resnet", "pixels"])
def test_models_give_unit_vectors_of_their_size(model_name):
    image = load_image(data_dir("face_recognition_examples") / "tests" / "test_images" / "obama.jpg")
    model = get_model(model_name)
    face = detect_faces(image)[0]
    chip = model.chip(image, face)
    vectors = model.embed([chip, chip[:, ::-1].copy()])
    assert vectors.shape == (2, model.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.embed([]).shape == (0, model.dim)


@pytest.mark.data
def test_dlib_chip_is_aligned_150px():
    image = load_image(data_dir("face_recognition_examples") / "tests" / "test_images" / "obama.jpg")
    face = detect_faces(image)[0]
    chip = get_model("dlib-resnet").chip(image, face)
    assert chip.shape == (150, 150, 3)
    again = detect_faces(chip, "hog", upsample=1)
    assert again, "the aligned chip should still hold a detectable face"
    eyes_y = (again[0].left_eye[1], again[0].right_eye[1])
    assert abs(eyes_y[0] - eyes_y[1]) <= 4  # upright: eyes level


@pytest.mark.data
def test_flip_tta_stays_close_to_plain():
    photo = data_dir("face_recognition_examples") / "tests" / "test_images" / "obama.jpg"
    plain = facegate.represent(photo, tta=False)[0].embedding
    flipped = facegate.represent(photo, tta=True)[0].embedding
    assert 0.0 < facegate.distance(plain, flipped) < 0.2


def test_fallback_runs_the_second_detector_only_when_the_first_finds_nothing(monkeypatch):
    from facegate.detection.detectors import FallbackDetector

    calls: list[tuple[str, int]] = []

    class Recorder:
        def __init__(self, name: str, finds: bool) -> None:
            self.name, self.finds = name, finds

        def find(self, image, upsample=None):
            calls.append((self.name, upsample))
            return ["face"] if self.finds else []

    detectors = {"a": Recorder("a", False), "b": Recorder("b", True), "c": Recorder("c", True)}
    monkeypatch.setattr("facegate.detection.detectors.get_detector", detectors.__getitem__)
    assert FallbackDetector("a", "b", "c").find(np.zeros((50, 50, 3), np.uint8)) == ["face"]
    assert calls == [("a", None), ("b", None)]
