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
    #: whether a large image may first be searched shrunk (see :meth:`find_coarse`)
    coarse: ClassVar[bool] = True

    @abstractmethod
    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        """Return every face found, each with a box, confidence and 5 landmarks.

        ``upsample`` doubles the image that many times before searching, so faces
        smaller than the detector's window are found (at a cost in time).
        """

    def find(self, image: np.ndarray, upsample: int | None = None) -> list[FacialArea]:
        """Faces at ``upsample``, or with ``None`` at rising levels until some are found.

        No level hands the detector more than :data:`MAX_DETECTOR_PIXELS`: levels
        past the budget are skipped (an explicit ``upsample`` is lowered to fit), and
        an image over it at its own size is searched shrunk, its boxes and landmarks
        mapped back.
        """
        scale = min(1.0, float(np.sqrt(MAX_DETECTOR_PIXELS / (image.shape[0] * image.shape[1]))))
        if scale < 1.0:
            small = _shrink(image, scale)
            return [_grow(face, 1.0 / scale, image.shape) for face in self.find(small, 0 if upsample else upsample)]
        levels = auto_upsample(image) if upsample is None else [upsample]
        affordable = [level for level in levels if image.shape[0] * image.shape[1] * 4**level <= MAX_DETECTOR_PIXELS]
        if upsample is not None and not affordable:
            affordable = [max_level(image)]
        for level in affordable:
            faces = self.detect(image, upsample=level)
            if faces:
                return faces
        return []

    def find_coarse(self, image: np.ndarray) -> list[FacialArea]:
        """The faces of a large image found in a copy shrunk to :data:`COARSE_SIDE` pixels
        on its short side, boxes mapped back and landmarks found again at full size;
        [] when the image is not large or nothing was found there (search it whole).

        A face must span about 80 px in the copy, an eighth of its short side, to be
        found: a portrait or a door camera's subject is, at a fraction of the cost of
        searching megapixels; smaller faces need the whole search.
        """
        short = min(image.shape[:2])
        if not self.coarse or short < COARSE_FACTOR * COARSE_SIDE:
            return []
        scale = COARSE_SIDE / short
        found = self.find(_shrink(image, scale), 0)
        return [_refine(_grow(face, 1.0 / scale, image.shape), image) for face in found]


#: large images are searched first at this size (short side, pixels) ...
COARSE_SIDE = 640
#: ... when their short side is at least this many times it
COARSE_FACTOR = 1.5

#: the most pixels any detector is handed at once (after upsampling): native code is
#: never given an image it has not been checked to handle
MAX_DETECTOR_PIXELS = 16_000_000


def max_level(image: np.ndarray) -> int:
    """The highest upsampling level within :data:`MAX_DETECTOR_PIXELS`."""
    level = 0
    while image.shape[0] * image.shape[1] * 4 ** (level + 1) <= MAX_DETECTOR_PIXELS:
        level += 1
    return level


def _shrink(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    size = (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale)))
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def _grow(face: FacialArea, factor: float, shape: tuple[int, ...]) -> FacialArea:
    """A face found in a shrunk image, in the original image's pixels."""
    height, width = shape[:2]
    x, y = min(int(face.x * factor), width - 1), min(int(face.y * factor), height - 1)
    w, h = min(int(round(face.w * factor)), width - x), min(int(round(face.h * factor)), height - y)
    return FacialArea(x, y, w, h, face.confidence, np.asarray(face.landmarks, dtype=np.float64) * factor)


def _refine(face: FacialArea, image: np.ndarray) -> FacialArea:
    """``face`` with its landmarks found again in ``image`` (a larger copy than it was found in)."""
    from facegate.detection.landmarks import five_points

    points = five_points(image, face.x, face.y, face.w, face.h)
    return FacialArea(face.x, face.y, face.w, face.h, face.confidence, points)


def auto_upsample(image: np.ndarray) -> list[int]:
    """Upsampling levels to try, in order, until a face is found.

    A face must be about 80 px wide for dlib's HOG window; small images get a second
    (and, when tiny, a third) search at double and quadruple size.
    Levels above 0 stop where the upsampled image would pass
    :data:`AUTO_UPSAMPLE_PIXELS`: a face under 80 px in a photo that large is too
    small to decide on, and searching for it costs seconds when there is no face.
    """
    short_side = min(image.shape[:2])
    levels = [0, 1, 2] if short_side <= 160 else [0, 1]
    pixels = image.shape[0] * image.shape[1]
    return [level for level in levels if level == 0 or pixels * 4**level <= AUTO_UPSAMPLE_PIXELS]


#: the most pixels an automatic upsampling level may search (a 720x720 photo doubled)
AUTO_UPSAMPLE_PIXELS = 2_100_000
