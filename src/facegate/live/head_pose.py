"""What a face's 68 landmarks say about its eyes and its pose, frame by frame.

- :func:`landmarks_68`: dlib's 68-point shape predictor (iBUG 300-W layout) in a face box.
- :func:`eye_aspect_ratio`: Soukupová and Čech's (2016) eye aspect ratio of one eye's
  six points, ``(|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)``: about 0.3 open, near 0 shut;
  unchanged when the face is moved, scaled or turned in the image plane.
- :func:`yaw_degrees`: the head's yaw from ``cv2.solvePnP`` of six landmarks against a
  generic 3D face, with a pinhole camera whose focal length is the image's width.
- :func:`face_height`: the eyes-to-mouth height in eye distances (a picture tilted away shrinks it).
- :data:`FACE_PLANE`, :data:`LOWER_NOSE` and :data:`BROW_TO_MOUTH`: the groups of points
  :mod:`facegate.live.liveness` compares to tell a head from a flat picture and a blink from a wink.

**Sign of the yaw.** Positive when the person turned their head to *their own left*:
in an unmirrored camera image (what OpenCV and a browser's ``getUserMedia`` deliver;
a selfie preview is mirrored for display only) their nose then moves toward the
image's *right*. The yaw is measured against the line of sight from the camera to the
face, not the camera's axis, so a face that looks at the camera from the edge of the
picture, or a frontal photo slid sideways, reads 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from facegate.detection.landmarks import dlib_rect
from facegate.resources import shape_predictor_68

#: the iBUG 68-point layout: each eye's six points (p1..p6 of Soukupová and Čech), in image terms
#: (landmarks 36-41 lie on the image's left: the person's right eye)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
EYES = tuple(range(36, 48))
BROWS = tuple(range(17, 27))
MOUTH = tuple(range(48, 68))
#: the points a blink does not move: jaw line, nose and mouth (eyes and brows left out)
STILL_IN_A_BLINK = tuple(i for i in range(68) if i not in EYES and i not in BROWS)
#: points that lie close to one plane of a head: the eyes' and the mouth's (the generic face of
#: :data:`FACE_3D` puts the eyes' and mouth's corners within 10 mm of one depth) ...
FACE_PLANE = EYES + MOUTH
#: ... and the lower nose (its tip, 30, and the nostrils, 31-35), which stands in front of that
#: plane (the tip by 130 mm, some 0.4 of the distance between the eyes' centres): when a head
#: turns, it moves sideways against the plane by about its depth times the sine of the turn; on a
#: flat picture it does not move against the plane at all
LOWER_NOSE = tuple(range(30, 36))
#: each side's brow and mouth corner, the image's left side first: a wink draws them together
#: on its side (the brow comes down, the cheek and the mouth's corner go up), a blink on neither
BROW_TO_MOUTH = ((tuple(range(17, 22)), 48), (tuple(range(22, 27)), 54))

#: landmark index -> a generic face in millimetres: x to the image's right, y down, z away
#: from the camera, nose tip at the origin (the six-point model of Mallick's "Head pose
#: estimation using OpenCV and Dlib", LearnOpenCV 2016, with y and z turned to image axes)
FACE_3D = {
    30: (0.0, 0.0, 0.0),  # nose tip
    8: (0.0, 330.0, 65.0),  # chin
    36: (-225.0, -170.0, 135.0),  # outer corner of the eye on the image's left
    45: (225.0, -170.0, 135.0),  # outer corner of the eye on the image's right
    48: (-150.0, 150.0, 125.0),  # mouth corner on the image's left
    54: (150.0, 150.0, 125.0),  # mouth corner on the image's right
}
_MODEL_INDEX = list(FACE_3D)
_MODEL_POINTS = np.array([FACE_3D[i] for i in _MODEL_INDEX], dtype=np.float64)


def landmarks_68(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The 68 landmarks (x, y) of the face in ``box`` (x, y, w, h) of an RGB image, float64 (68, 2)."""
    shape = shape_predictor_68()(np.ascontiguousarray(image), dlib_rect(*box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """The eye aspect ratio of one eye's six points (p1 outer or inner corner, clockwise)."""
    p = np.asarray(eye, dtype=np.float64)
    width = np.linalg.norm(p[0] - p[3])
    if width <= 1e-9:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


def eye_ratios(points: np.ndarray) -> tuple[float, float]:
    """The eye aspect ratios of the person's (left, right) eye from 68 landmarks."""
    return eye_aspect_ratio(points[LEFT_EYE]), eye_aspect_ratio(points[RIGHT_EYE])


def eye_distance(points: np.ndarray) -> float:
    """Pixels between the two eyes' centres: the scale lengths are compared at."""
    return float(np.linalg.norm(points[LEFT_EYE].mean(axis=0) - points[RIGHT_EYE].mean(axis=0)))


def face_height(points: np.ndarray) -> float:
    """The face's height from the eyes' midpoint to the mouth's centre, in eye distances.

    A head turning about its vertical keeps it or grows it (its eyes come closer together as
    they turn away); a picture tilted about its horizontal axis shrinks it (by the cosine of the tilt).
    """
    eyes = (points[LEFT_EYE].mean(axis=0) + points[RIGHT_EYE].mean(axis=0)) / 2
    mouth = np.asarray(points)[list(MOUTH)].mean(axis=0)
    return float(np.linalg.norm(mouth - eyes) / max(eye_distance(points), 1e-9))


def camera_matrix(size: tuple[int, int]) -> np.ndarray:
    """A pinhole camera for an image of ``size`` (width, height): focal length = width, centre in the middle."""
    width, height = size
    return np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)


def head_pose(points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The rotation matrix and translation (mm) of the generic face that project onto ``points``."""
    image_points = np.ascontiguousarray(np.asarray(points, dtype=np.float64)[_MODEL_INDEX])
    camera = camera_matrix(size)
    # start from a frontal face at the distance that matches the eyes' outer corners (450 mm apart), then refine
    spread = max(float(np.linalg.norm(image_points[3] - image_points[2])), 1.0)
    depth = camera[0, 0] * 450.0 / spread
    centre = image_points[0]
    start_t = np.array(
        [(centre[0] - camera[0, 2]) * depth / camera[0, 0], (centre[1] - camera[1, 2]) * depth / camera[1, 1], depth]
    )
    ok, rvec, tvec = cv2.solvePnP(
        _MODEL_POINTS,
        image_points,
        camera,
        None,
        rvec=np.zeros((3, 1)),
        tvec=start_t.reshape(3, 1),
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:  # pragma: no cover - the iterative solver always returns a pose from a guess
        raise ValueError("solvePnP found no head pose")
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation, tvec.ravel()


def yaw_from_pose(rotation: np.ndarray, translation: np.ndarray) -> float:
    """Degrees the face's forward direction is turned, about the vertical, from the line of sight to the camera.

    Positive: turned to the person's own left (toward the image's right, see the module's note).
    """
    forward = rotation @ np.array([0.0, 0.0, -1.0])  # the model looks toward the camera (z away from it)
    to_camera = -np.asarray(translation, dtype=np.float64)
    facing = np.degrees(np.arctan2(forward[0], -forward[2]))
    sight = np.degrees(np.arctan2(to_camera[0], -to_camera[2]))
    return float((facing - sight + 180.0) % 360.0 - 180.0)


def pitch_from_pose(rotation: np.ndarray, translation: np.ndarray) -> float:
    """Degrees the face is turned up (+) or down (-) from the line of sight to the camera."""
    forward = rotation @ np.array([0.0, 0.0, -1.0])
    to_camera = -np.asarray(translation, dtype=np.float64)
    facing = np.degrees(np.arctan2(-forward[1], -forward[2]))
    sight = np.degrees(np.arctan2(-to_camera[1], -to_camera[2]))
    return float((facing - sight + 180.0) % 360.0 - 180.0)


def pose_degrees(points: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
    """The head's (yaw, pitch) in degrees: + is the person's own left, and up."""
    rotation, translation = head_pose(points, size)
    return yaw_from_pose(rotation, translation), pitch_from_pose(rotation, translation)


def yaw_degrees(points: np.ndarray, size: tuple[int, int]) -> float:
    """The head's yaw in degrees from 68 landmarks in an image of ``size`` (width, height); + is the person's left."""
    return yaw_from_pose(*head_pose(points, size))


def project(points_3d: np.ndarray, rotation: np.ndarray, translation: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels of 3D points (model millimetres) posed by ``rotation`` and ``translation`` (for tests and checks)."""
    camera = camera_matrix(size)
    posed = np.asarray(points_3d, dtype=np.float64) @ rotation.T + translation
    pixels = posed @ camera.T
    return pixels[:, :2] / pixels[:, 2:3]


def rotation_y(degrees: float) -> np.ndarray:
    """The rotation of the model that turns the face ``degrees`` toward the person's own left (image right)."""
    a = np.radians(degrees)
    # forward is (0, 0, -1); turning it toward +x (image right) by a: (sin a, 0, -cos a)
    return np.array([[np.cos(a), 0.0, -np.sin(a)], [0.0, 1.0, 0.0], [np.sin(a), 0.0, np.cos(a)]])
