"""What a detector returns, and the interface every detector implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class FacialArea:
    """One detected face: its box in image pixels, a confidence and 5-point landmarks.

    ``landmarks`` holds dlib's 5-point layout as ``(x, y)`` rows: the two corners of
    the subject's left eye (image right), the two corners of the right eye, and the
    bottom of the nose.
    """

    x: int
    y: int
    w: int
    h: int
    confidence: float
    landmarks: np.ndarray = field(repr=False, compare=False)

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def left_eye(self) -> tuple[int, int]:
        """Centre of the subject's left eye (deepface's naming)."""
        return _centre(self.landmarks[0:2])

    @property
    def right_eye(self) -> tuple[int, int]:
        return _centre(self.landmarks[2:4])

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "y": self.y,
            "w": self.w,
            "h": self.h,
            "left_eye": list(self.left_eye),
            "right_eye": list(self.right_eye),
            "confidence": round(float(self.confidence), 4),
        }


def _centre(points: np.ndarray) -> tuple[int, int]:
    cx, cy = points.mean(axis=0)
    return int(round(cx)), int(round(cy))


class Detector(ABC):
    """Finds faces in an RGB ``uint8`` image of shape (H, W, 3)."""

    name: ClassVar[str]

    @abstractmethod
    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        """Return every face found, each with a box, confidence and 5 landmarks.

        ``upsample`` doubles the image that many times before searching, so faces
        smaller than the detector's window are found (at a cost in time).
        """
