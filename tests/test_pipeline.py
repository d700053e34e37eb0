"""The pipeline on synthetic input: policies, batching, errors in place, verify's result."""

from __future__ import annotations

import json

import numpy as np
import pytest

import facegate
from facegate.errors import ImageError, NoFaceError
from facegate.models import get_model
from facegate.pipeline import embed_chips, represent, represent_many

from .conftest import DEEPFACE_VERIFY_KEYS, solid

FAKE = {"model_name": "mean-colour", "detector_backend": "flat"}


def test_represent_returns_face_with_area():
    face = represent(solid((255, 0, 0)), **FAKE)[0]
    np.testing.assert_allclose(face.embedding, [1.0, 0.0, 0.0])
    assert face.facial_area.to_dict()["w"] == 32
    assert face.model == "mean-colour" and face.detector == "flat"
    assert json.loads(json.dumps(face.to_dict()))["embedding"] == [1.0, 0.0, 0.0]


def test_instances_work_where_names_do(monkeypatch):
    """A model or detector given as an instance (weights set in code) is used as it is, in every entry point."""
    from facegate.detection import DETECTORS
    from facegate.models import MODELS

    model, detector = MODELS.create("mean-colour"), DETECTORS.create("flat")
    monkeypatch.setattr(MODELS, "shared", lambda *a, **k: pytest.fail("a name was looked up"))
    face = represent(solid((255, 0, 0)), model, detector)[0]
    assert (face.model, face.detector) == ("mean-colour", "flat")
    np.testing.assert_allclose(face.embedding, [1.0, 0.0, 0.0])
    [[again]] = represent_many([solid((255, 0, 0))], model, detector, workers=2)  # instances stay in this process
    np.testing.assert_allclose(again.embedding, face.embedding)
    result = facegate.verify(solid((200, 0, 0)), solid((190, 5, 0)), model, detector, threshold=0.1)
    assert (result.verified, result.model, result.detector_backend) == (True, "mean-colour", "flat")


def test_no_face_raises():
    with pytest.raises(NoFaceError):
        represent(solid((0, 0, 0)), **FAKE)


@pytest.mark.parametrize("workers", [1, 2])
def test_represent_many_keeps_order_and_puts_errors_in_place(workers):
    images = [solid((i * 20 + 10, 0, 0)) for i in range(7)]
    images[2] = solid((0, 0, 0))  # no face
    images[5] = b"garbage"  # not an image
    out = represent_many(images, batch_size=3, workers=workers, **FAKE)
    assert isinstance(out[2], NoFaceError) and isinstance(out[5], ImageError)
    for i in (0, 1, 3, 4, 6):
        assert out[i][0].embedding[0] == pytest.approx((i * 20 + 10) / 255)


def test_tta_averages_with_the_mirror_image():
    model = get_model("pixels")
    chip = np.zeros((32, 32, 3), np.uint8)
    chip[:10, :12] = 255  # a bright patch top left: the mirror has it top right
    plain, mirrored = model.embed([chip, chip[:, ::-1].copy()])
    tta = embed_chips(model, [chip], tta=True)[0]
    expected = (plain + mirrored) / np.linalg.norm(plain + mirrored)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(tta, expected, atol=1e-6)
    assert 0.1 < float(np.linalg.norm(tta - plain)) < 1.9


def test_verify_result_has_deepface_keys():
    result = facegate.verify(solid((200, 0, 0)), solid((190, 5, 0)), "mean-colour", "flat", threshold=0.1)
    data = result.to_dict()
    assert set(data) >= DEEPFACE_VERIFY_KEYS
    assert data["verified"] is True and set(data["facial_areas"]) == {"img1", "img2"}
    json.dumps(data)
    assert not facegate.verify(solid((200, 0, 0)), solid((0, 200, 0)), "mean-colour", "flat", threshold=0.1).verified


def test_verify_never_matches_without_a_face():
    with pytest.raises(NoFaceError, match="img2"):
        facegate.verify(solid((200, 0, 0)), solid((0, 0, 0)), "mean-colour", "flat", threshold=10.0)


def test_worker_processes_embed_the_same_faces_as_one_at_a_time():
    from tests.conftest import data_dir

    photos = sorted((data_dir("lfw", "images")).glob("A*/*.jpg"))[:10]
    many = represent_many(photos, batch_size=4, workers=2)
    for photo, faces in zip(photos, many, strict=True):
        one = represent(photo)
        assert [f.facial_area for f in faces] == [f.facial_area for f in one]
        np.testing.assert_allclose(faces[0].embedding, one[0].embedding, atol=1e-6)
        assert (faces[0].engine, faces[0].tta) == ("onnx", "flip")
