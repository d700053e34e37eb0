"""5-point landmarks for any face box, from dlib's shape predictor."""

from __future__ import annotations

import numpy as np

from facegate.resources import shape_predictor_5


def dlib_rect(x: int, y: int, w: int, h: int):  # -> dlib.rectangle
    import dlib

    return dlib.rectangle(int(x), int(y), int(x + w - 1), int(y + h - 1))


def five_points(image: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The 5 landmarks (x, y) of the face in box (x, y, w, h), float32 array (5, 2)."""
    shape = shape_predictor_5()(image, dlib_rect(x, y, w, h))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def clip_box(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Clip a box to the image; detectors may return boxes partly outside it."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)
