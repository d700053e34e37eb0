"""OpenFace alignment: three landmarks warped onto OpenFace's template."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.alignment_openface import (
    INNER_EYES_AND_BOTTOM_LIP,
    OUTER_EYES_AND_NOSE,
    align_openface,
    landmarks_68,
    openface_chip,
    template_points,
)
from facegate.detection import get_detector
from facegate.detection.base import FacialArea
from facegate.images import load_image
from tests.conftest import data_dir


def test_template_is_openfaces_minmax_template():
    # OpenFace's MINMAX_TEMPLATE rows 36, 45 and 33 (outer eye corners, nose tip)
    expected = np.array([[0.194157, 0.169267], [0.788859, 0.158171], [0.494951, 0.514441]])
    assert np.allclose(template_points(1, OUTER_EYES_AND_NOSE), expected, atol=2e-6)
    assert np.allclose(template_points(96), 96 * expected, atol=2e-4)
    inner = template_points(96, INNER_EYES_AND_BOTTOM_LIP)
    assert inner[0, 0] < inner[1, 0] and inner[2, 1] > inner[0, 1]  # eyes left to right, lip below
    with pytest.raises(ValueError, match="no template point"):
        template_points(96, (0, 1, 2))


def test_align_rejects_other_landmark_sets():
    with pytest.raises(ValueError, match="68"):
        align_openface(np.zeros((50, 50, 3), np.uint8), np.zeros((5, 2)))


def _redetected(chip: np.ndarray) -> np.ndarray:
    """68 landmarks found afresh on a chip (4x upsampled so dlib's detector sees a face)."""
    import cv2

    big = cv2.resize(chip, (384, 384), interpolation=cv2.INTER_CUBIC)
    faces = get_detector("hog").detect(big)
    face = max(faces, key=lambda f: f.area) if faces else FacialArea(0, 0, 384, 384, 1.0, np.zeros((5, 2)))
    return landmarks_68(big, face) / 4.0


@pytest.mark.data
@pytest.mark.parametrize(
    "photo",
    ["face_recognition_examples/tests/test_images/obama.jpg", "lfw/images/AJ_Cook/AJ_Cook_0001.jpg"],
)
def test_real_face_lands_on_the_template(photo):
    folder, name = photo.split("/", 1)
    image = load_image(data_dir(folder) / name)
    face = max(get_detector("hog").detect(image), key=lambda f: f.area)
    landmarks = landmarks_68(image, face)
    chip, matrix = align_openface(image, landmarks)
    assert chip.shape == (96, 96, 3) and chip.dtype == np.uint8
    moved = landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(moved[list(OUTER_EYES_AND_NOSE)], template_points(96), atol=1e-3)
    # landmarks found again on the aligned chip sit within a few pixels of the template
    again = _redetected(chip)
    error = np.linalg.norm(again[list(OUTER_EYES_AND_NOSE)] - template_points(96), axis=1)
    assert error.max() < 3.5, error
    # and the rest of the face follows: mouth corners level, below the nose, not mirrored
    assert abs(again[48, 1] - again[54, 1]) < 4 and again[48, 0] < again[54, 0]
    assert again[48, 1] > template_points(96)[2, 1]
    assert np.array_equal(openface_chip(image, face), chip)
