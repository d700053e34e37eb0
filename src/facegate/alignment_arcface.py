"""ArcFace's face alignment: five landmarks warped onto a 112x112 template by a similarity.

insightface (``insightface.utils.face_align``) and OpenCV's ``FaceRecognizerSF`` (SFace)
align a face by the least-squares similarity (rotation, uniform scale, translation;
Umeyama's method, as ``skimage.transform.SimilarityTransform`` estimates it) that takes
its five points (eye centres, nose tip, mouth corners) closest to :data:`ARCFACE_TEMPLATE`,
and warp it with bilinear interpolation and a black border.

Their five points come from a face detector (RetinaFace, SCRFD, YuNet). facegate's
detectors give dlib's 5-point layout (eye corners and the base of the nose, no mouth), so
the five points are derived here from dlib's 68 landmarks on the face box: each eye's
centre is the mean of its six points (36-41, 42-47), the nose tip is point 30 and the
mouth corners points 48 and 54. The template lists the face as the image shows it: its
point 0 is the eye on the image's left (the subject's right eye, dlib's 36-41).
"""

from __future__ import annotations

import numpy as np

from facegate.alignment_openface import landmarks_68
from facegate.detection.base import FacialArea

__all__ = [
    "ARCFACE_TEMPLATE",
    "align_arcface",
    "arcface_chip",
    "arcface_points",
    "similarity_matrix",
    "template",
]

#: insightface's ``arcface_dst`` for a 112x112 chip: eye on the image's left, the other
#: eye, nose tip, mouth corner on the image's left, the other mouth corner
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def template(size: int = 112) -> np.ndarray:
    """The five template points of a ``size`` x ``size`` chip, float32 ``(5, 2)``.

    As insightface's ``estimate_norm``: a multiple of 112 scales the template; a multiple
    of 128 scales it by ``size / 128`` and shifts it right by 8 of those pixels.
    """
    if size > 0 and size % 112 == 0:
        return (ARCFACE_TEMPLATE * (size / 112.0)).astype(np.float32)
    if size > 0 and size % 128 == 0:
        ratio = size / 128.0
        out = ARCFACE_TEMPLATE * ratio
        out[:, 0] += 8.0 * ratio
        return out.astype(np.float32)
    raise ValueError(f"the ArcFace template is defined for chips of a multiple of 112 or 128 pixels, not {size}")


def arcface_points(landmarks: np.ndarray) -> np.ndarray:
    """ArcFace's five points from dlib's 68 landmarks, float32 ``(5, 2)``, in template order."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got shape {points.shape}")
    five = [points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]]
    return np.array(five, dtype=np.float32)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity taking points ``src`` closest (least squares) to ``dst`` (Umeyama 1991).

    The same estimate as ``skimage.transform.SimilarityTransform`` (insightface) and
    OpenCV's SFace alignment: no reflection, one scale for both axes.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two equal (n, 2) point sets with n >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    if variance == 0:
        raise ValueError("the source points all coincide; no similarity maps them")
    scale = float((s * d).sum() / variance)
    linear = scale * rotation
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def align_arcface(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """The ArcFace chip of a face with these 68 landmarks, and its 2x3 matrix (image to chip).

    Apply the matrix to other points with ``points @ M[:, :2].T + M[:, 2]``.
    """
    import cv2

    matrix = similarity_matrix(arcface_points(landmarks), template(size))
    chip = cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
    )
    return chip, matrix


def arcface_chip(image: np.ndarray, face: FacialArea, size: int = 112) -> np.ndarray:
    """The ArcFace chip of ``face``: RGB uint8 ``(size, size, 3)``, 68 landmarks found on its box."""
    chip, _ = align_arcface(image, landmarks_68(image, face), size)
    return chip
