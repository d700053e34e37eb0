"""The built-in detectors: dlib HOG, dlib MMOD CNN, OpenCV Haar, and skip."""

from __future__ import annotations

from functools import cache

import numpy as np

from facegate.detection.base import COARSE_FACTOR, COARSE_SIDE, Detector, FacialArea
from facegate.detection.landmarks import clip_box, five_points
from facegate.registry import Registry
from facegate.resources import mmod_detector

DETECTORS: Registry[Detector] = Registry("detector")


def _face(image: np.ndarray, x: int, y: int, w: int, h: int, confidence: float) -> FacialArea | None:
    height, width = image.shape[:2]
    x, y, w, h = clip_box(x, y, w, h, width, height)
    if w < 4 or h < 4:
        return None
    return FacialArea(x, y, w, h, float(confidence), five_points(image, x, y, w, h))


@cache
def _hog():  # -> dlib.fhog_object_detector
    import dlib

    return dlib.get_frontal_face_detector()


@DETECTORS.register("hog")
class HogDetector(Detector):
    """dlib's HOG + linear SVM frontal face detector (fast, frontal faces, >= ~80 px)."""

    name = "hog"

    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        rects, scores, _ = _hog().run(image, upsample, 0.0)
        faces = [_face(image, r.left(), r.top(), r.width(), r.height(), s) for r, s in zip(rects, scores, strict=True)]
        return [f for f in faces if f is not None]


@cache
def _mmod_onnx():  # -> facegate.detection.mmod_onnx.MmodOnnxDetector
    from facegate.detection.mmod_onnx import MmodOnnxDetector

    return MmodOnnxDetector()


@DETECTORS.register("cnn")
class CnnDetector(Detector):
    """dlib's MMOD CNN detector (more poses and lighting, several times slower on a CPU than HOG).

    By default its network runs on ONNX Runtime (:mod:`facegate.detection.mmod_onnx`:
    the same boxes as dlib's, about ten times faster); ``engine="dlib"`` or
    ``$FACEGATE_ENGINE=dlib`` runs dlib's own ``cnn_face_detection_model_v1``.
    """

    name = "cnn"

    def __init__(self, engine: str | None = None, threads: int | None = None) -> None:
        self.engine = engine
        self.threads = threads  # ONNX Runtime threads; None: the shared detector ($FACEGATE_ONNX_THREADS)
        self._own = None

    def engine_name(self) -> str:
        """What runs the network: ``engine``, else ``$FACEGATE_ENGINE``, else ONNX Runtime (as for the ResNet)."""
        from facegate.models.engines import engine_choice

        return engine_choice(self.engine)

    def _onnx(self):  # -> MmodOnnxDetector
        if self.threads is None:
            return _mmod_onnx()
        if self._own is None:
            from facegate.detection.mmod_onnx import MmodOnnxDetector

            self._own = MmodOnnxDetector(threads=self.threads)
        return self._own

    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        if self.engine_name() == "dlib":
            found = [
                (d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height(), d.confidence)
                for d in mmod_detector()(image, upsample)
            ]
        else:
            found = [(d.left, d.top, d.width, d.height, d.confidence) for d in self._onnx()(image, upsample)]
        faces = [_face(image, *box) for box in found]
        return [f for f in faces if f is not None]


@cache
def _haar():  # -> cv2.CascadeClassifier
    import cv2

    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


@DETECTORS.register("haar")
class HaarDetector(Detector):
    """OpenCV's bundled Viola-Jones cascade (fastest, least accurate)."""

    name = "haar"

    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        import cv2

        scale = 2**upsample
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale > 1:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        boxes, _, weights = _haar().detectMultiScale3(
            grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24), outputRejectLevels=True
        )
        faces = [
            _face(image, *(int(round(v / scale)) for v in box), float(weight))
            for box, weight in zip(boxes, np.ravel(weights), strict=True)
        ]
        return [f for f in faces if f is not None]


@DETECTORS.register("skip")
class SkipDetector(Detector):
    """No detection: the whole image is the face (for pre-cropped photos)."""

    name = "skip"
    coarse = False

    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        height, width = image.shape[:2]
        return [FacialArea(0, 0, width, height, 1.0, five_points(image, 0, 0, width, height))]


class FallbackDetector(Detector):
    """Tries detectors in order and returns the faces of the first that finds any.

    Each detector gets its whole search (every upsampling level) before the next
    one is tried, so the slow detectors run only where the fast ones found nothing.
    A later detector searches a large image only shrunk (:meth:`Detector.find_coarse`):
    it is there for the poses and lighting the first one misses, not for faces too
    small for it, and a photo without any face then costs a fraction of a second
    instead of several seconds.
    """

    def __init__(self, *names: str) -> None:
        self.names = names

    def detect(self, image: np.ndarray, upsample: int = 0) -> list[FacialArea]:
        return self.find(image, upsample)

    def find_coarse(self, image: np.ndarray) -> list[FacialArea]:
        """The first detector's shrunk search (the later ones search shrunk in :meth:`find`)."""
        return get_detector(self.names[0]).find_coarse(image)

    def find(self, image: np.ndarray, upsample: int | None = None) -> list[FacialArea]:
        for i, name in enumerate(self.names):
            detector = get_detector(name)
            later = i > 0 and upsample is None and min(image.shape[:2]) >= COARSE_FACTOR * COARSE_SIDE
            faces = detector.find_coarse(image) if later else detector.find(image, upsample)
            if faces:
                return faces
        return []


@DETECTORS.register("hog+cnn")
class HogThenCnn(FallbackDetector):
    """HOG first; the CNN only for the images where HOG finds no face (cheap on average)."""

    name = "hog+cnn"

    def __init__(self) -> None:
        super().__init__("hog", "cnn")


def get_detector(detector: str | Detector) -> Detector:
    """Detector ``detector``: the shared instance of a registry name, or the instance given."""
    if isinstance(detector, Detector):
        return detector
    return DETECTORS.shared(detector)
