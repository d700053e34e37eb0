"""facegate: face verification (1:1) and recognition (1:K, open set) on a CPU.

A network maps each face to an embedding; distances between embeddings decide,
against thresholds calibrated on LFW.

>>> import facegate
>>> facegate.verify("a.jpg", "b.jpg").verified                  # doctest: +SKIP
>>> with facegate.Gallery("office.sqlite") as gallery:          # doctest: +SKIP
...     gallery.enroll("younes", ["younes.jpg"])
...     print(gallery.identify("camera_0.jpg").identity)
"""

from facegate.detection import DETECTORS
from facegate.distances import METRICS, distance, pairwise
from facegate.errors import (
    FacegateError,
    GalleryError,
    ImageError,
    MultipleFacesError,
    NoFaceError,
    PersonNotFoundError,
)
from facegate.gallery import Candidate, EnrollResult, Gallery, IdentifyResult
from facegate.images import load_image
from facegate.models import MODELS, EmbeddingModel, get_model
from facegate.pipeline import Face, detect_faces, represent, represent_many
from facegate.verification import VerifyResult, verify

__version__ = "0.1.0"

__all__ = [
    "DETECTORS",
    "METRICS",
    "MODELS",
    "Candidate",
    "EmbeddingModel",
    "EnrollResult",
    "Face",
    "FacegateError",
    "Gallery",
    "GalleryError",
    "IdentifyResult",
    "ImageError",
    "MultipleFacesError",
    "NoFaceError",
    "PersonNotFoundError",
    "VerifyResult",
    "__version__",
    "detect_faces",
    "distance",
    "get_model",
    "load_image",
    "pairwise",
    "represent",
    "represent_many",
    "verify",
]
