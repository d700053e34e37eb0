"""Face alignment: turning a detected face into an upright, scaled crop ("chip").

dlib's 5-point alignment rotates and scales the face so the eyes and nose land where
dlib's ResNet was trained to see them. Models that align differently (OpenFace's
68-point template, for example) bring their own function.
"""

from __future__ import annotations

import numpy as np

from facegate.detection.base import FacialArea
from facegate.detection.landmarks import dlib_rect


def dlib_chip(image: np.ndarray, face: FacialArea, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib's aligned chip of ``face``: RGB uint8, ``size`` x ``size``."""
    import dlib

    points = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
    shape = dlib.full_object_detection(dlib_rect(face.x, face.y, face.w, face.h), points)
    return dlib.get_face_chip(np.ascontiguousarray(image), shape, size=size, padding=padding)
