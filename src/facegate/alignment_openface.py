"""OpenFace's face alignment: 68 dlib landmarks, three of them warped onto a template.

OpenFace (``openface/align_dlib.py``) normalises dlib's mean 68-point face shape to the
unit square (``MINMAX_TEMPLATE``) and maps three chosen landmarks of a face onto it with
an affine transform: for a ``size`` x ``size`` chip, landmark ``i`` goes to
``size * MINMAX_TEMPLATE[i]``. nn4.small2 was trained with ``OUTER_EYES_AND_NOSE``
(the outer eye corners, 36 and 45, and the nose tip, 33; indices of dlib's 68-point
layout, the subject's right eye first, i.e. the eye on the image's left).

Only the template points these landmark sets use are stored, with the template's
bounding box (min and max over all 68 points) that normalises them.
"""

from __future__ import annotations

import numpy as np

from facegate.detection.base import FacialArea
from facegate.detection.landmarks import dlib_rect
from facegate.resources import shape_predictor_68

__all__ = [
    "INNER_EYES_AND_BOTTOM_LIP",
    "OUTER_EYES_AND_NOSE",
    "align_openface",
    "landmarks_68",
    "openface_chip",
    "template_points",
]

#: outer eye corners and nose tip: what nn4.small2 was trained with
OUTER_EYES_AND_NOSE: tuple[int, int, int] = (36, 45, 33)
#: inner eye corners and bottom lip: OpenFace's default for its older models
INNER_EYES_AND_BOTTOM_LIP: tuple[int, int, int] = (39, 42, 57)

# OpenFace's TEMPLATE (dlib's mean face shape), the points used here ...
_TEMPLATE = {
    33: (0.520712933176, 0.634268222208),
    36: (0.252418718401, 0.331052263829),
    39: (0.403718978315, 0.33867711083),
    42: (0.631326076346, 0.334136672344),
    45: (0.782865376271, 0.321305281656),
    57: (0.525398405766, 0.841706377792),
}
# ... and the bounding box of all 68 (TPL_MIN, TPL_MAX) that MINMAX_TEMPLATE divides by
_TPL_MIN = np.array([0.0792396913815, 0.182360984545])
_TPL_MAX = np.array([0.971193274221, 1.06080371126])


def template_points(size: int = 96, indices: tuple[int, int, int] = OUTER_EYES_AND_NOSE) -> np.ndarray:
    """Where landmarks ``indices`` go in a ``size`` x ``size`` chip, float32 ``(3, 2)``."""
    unknown = [i for i in indices if i not in _TEMPLATE]
    if unknown:
        raise ValueError(f"no template point stored for landmarks {unknown}; known: {sorted(_TEMPLATE)}")
    raw = np.array([_TEMPLATE[i] for i in indices])
    return (size * (raw - _TPL_MIN) / (_TPL_MAX - _TPL_MIN)).astype(np.float32)


def landmarks_68(image: np.ndarray, face: FacialArea) -> np.ndarray:
    """dlib's 68 landmarks ``(x, y)`` of the face in ``face``'s box, float32 ``(68, 2)``."""
    shape = shape_predictor_68()(np.ascontiguousarray(image), dlib_rect(face.x, face.y, face.w, face.h))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def align_openface(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = 96,
    indices: tuple[int, int, int] = OUTER_EYES_AND_NOSE,
) -> tuple[np.ndarray, np.ndarray]:
    """The OpenFace chip of a face with these 68 landmarks, and its 2x3 affine matrix.

    The matrix maps image coordinates to chip coordinates (apply it to other points with
    ``points @ M[:, :2].T + M[:, 2]``).
    """
    import cv2

    points = np.asarray(landmarks, dtype=np.float32)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got shape {points.shape}")
    matrix = cv2.getAffineTransform(points[list(indices)], template_points(size, indices))
    chip = cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR)
    return chip, matrix


def openface_chip(image: np.ndarray, face: FacialArea, size: int = 96) -> np.ndarray:
    """OpenFace's ``OUTER_EYES_AND_NOSE`` chip of ``face``: RGB uint8 ``(size, size, 3)``."""
    chip, _ = align_openface(image, landmarks_68(image, face), size)
    return chip
