"""The probe quality gate: refuse to decide on a face too small, turned or blurred to trust.

Measured from what the pipeline already has (the box, the 5 landmarks and the
aligned chip), so it costs well under a millisecond:

- ``eye_distance``: pixels between the eye centres in the original image;
- ``yaw``: how far the nose sits off the eyes' midpoint, along the eye line, in
  eye distances (0 for a frontal face; about 0.5 for a face turned some 45°);
- ``sharpness``: variance of the Laplacian of the grey chip (low when blurred).

A refused probe raises :class:`~facegate.errors.PoorQualityError` ("try again",
with the reason): neither a match nor a "no".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facegate.errors import PoorQualityError


@dataclass(frozen=True)
class FaceQuality:
    eye_distance: float
    yaw: float
    sharpness: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


def measure(landmarks: np.ndarray, chip: np.ndarray) -> FaceQuality:
    """Quality of one face from its 5 landmarks (dlib's layout) and its aligned chip."""
    marks = np.asarray(landmarks, dtype=np.float64)
    left, right, nose = marks[0:2].mean(axis=0), marks[2:4].mean(axis=0), marks[4]
    axis = left - right
    eye_distance = float(np.hypot(*axis))
    unit = axis / max(eye_distance, 1e-6)
    yaw = float(np.dot(nose - (left + right) / 2, unit) / max(eye_distance, 1e-6))
    return FaceQuality(eye_distance, yaw, sharpness(chip))


def sharpness(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the chip's grey levels."""
    grey = np.asarray(chip, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey[..., :3] @ np.array([0.299, 0.587, 0.114])
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.var()) if lap.size else 0.0


@dataclass(frozen=True)
class QualityGate:
    """Limits a probe must meet before a decision is made on it.

    On LFW's training people a stricter gate did not pay (refusing the 5% most
    turned or blurred probes left FNMR at FMR 1e-3 unchanged: bench/decisions.py),
    so the defaults only refuse what lies outside everything LFW holds (its 0.5%
    extremes: 29 px between the eyes, yaw ±0.36, sharpness 7): faces a door camera
    should take again rather than decide on.
    """

    min_eye_distance: float = 12.0
    max_yaw: float = 0.45
    min_sharpness: float = 3.0

    def reasons(self, quality: FaceQuality) -> list[str]:
        out = []
        if quality.eye_distance < self.min_eye_distance:
            out.append(
                f"the face is too small ({quality.eye_distance:.0f} px between the eyes, "
                f"need {self.min_eye_distance:.0f})"
            )
        if abs(quality.yaw) > self.max_yaw:
            out.append(f"the face is turned too far (yaw {quality.yaw:+.2f}, limit ±{self.max_yaw:.2f})")
        if quality.sharpness < self.min_sharpness:
            out.append(f"the face is blurred (sharpness {quality.sharpness:.0f}, need {self.min_sharpness:.0f})")
        return out

    def check(self, face) -> None:
        """Raise :class:`PoorQualityError` when ``face`` (a pipeline Face) fails a limit."""
        quality = getattr(face, "quality", None)
        if quality is None:
            return
        reasons = self.reasons(quality)
        if reasons:
            raise PoorQualityError("try again: " + "; ".join(reasons), quality=quality.to_dict())


#: the gate a gallery applies to probes unless told otherwise
DEFAULT_GATE = QualityGate()
