"""Detect → align → embed: from images to face embeddings.

``represent`` handles one image; ``represent_many`` handles a list with batched
embedding (one network call for many faces), optional worker processes for
decoding and detection, and a progress bar. Both return :class:`Face` objects that
keep the box and landmarks the embedding came from.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from facegate.decisions.quality import FaceQuality, measure
from facegate.detection import DETECTORS, Detector, FacialArea, get_detector
from facegate.errors import FacegateError, MultipleFacesError, NoFaceError
from facegate.images import ImageInput, load_image
from facegate.models import MODELS, EmbeddingModel, get_model

#: which faces of an image to use: the main one (the default), the largest, all, or
#: an error when there are several
MultiFacePolicy = Literal["main", "largest", "all", "error"]
DEFAULT_MULTI_FACE: MultiFacePolicy = "main"
#: how fast a face loses prominence away from the image's centre: its area is weighted
#: by a Gaussian of its distance from the centre, with this standard deviation as a
#: share of the image's diagonal (chosen on LFW pairsDevTrain among 0.1 to 0.5, where
#: 0.1 and 0.15 tie; bench/lfw_accuracy.py sets it beside the largest face)
MAIN_FACE_SPREAD = 0.15

DEFAULT_MODEL = "dlib-resnet"
#: HOG, and dlib's CNN (on ONNX Runtime) only for the images where HOG finds no face:
#: no LFW image without a face, at HOG's cost on average (see bench/lfw_accuracy.py)
DEFAULT_DETECTOR = "hog+cnn"
#: average each face's embedding with its mirror image's (test-time augmentation):
#: a second network pass, fewer errors on LFW (see bench/lfw_accuracy.py; richer
#: augmentations bought nothing more, bench/tta_search.py)
DEFAULT_TTA = True


def tta_name(tta: bool) -> str:
    """The name results and galleries record for a test-time augmentation setting."""
    return "flip" if tta else "none"


@dataclass(frozen=True)
class EmbeddingSettings:
    """What made an embedding: the model, its weights, the test-time augmentation and
    the engine that ran the network.

    Embeddings compare only when model, weights and augmentation agree. The engine is
    recorded but not compared: the engines of one model compute the same function
    (dlib's ResNet on ONNX Runtime equals dlib's own to within 1e-6, tests/test_engines.py).
    """

    model: str
    tta: str
    engine: str
    weights: str | None = None

    #: the settings that change the numbers
    COMPARED: ClassVar[tuple[str, ...]] = ("model", "weights", "tta")

    @classmethod
    def of(cls, model_name: str | EmbeddingModel, tta: bool) -> EmbeddingSettings:
        model = get_model(model_name)
        return cls(model.name, tta_name(tta), model.engine_name, model.weights_id())

    def to_dict(self) -> dict[str, str | None]:
        return {"model": self.model, "tta": self.tta, "engine": self.engine, "weights": self.weights}


@dataclass(frozen=True)
class Face:
    """One face's embedding and where it came from."""

    embedding: np.ndarray
    facial_area: FacialArea
    model: str
    detector: str
    #: size, pose and sharpness of the face (see :mod:`facegate.decisions.quality`)
    quality: FaceQuality | None = None
    #: how many faces the detector found in the image (before the several-faces policy)
    faces_in_image: int = 1
    #: what ran the network, and the test-time augmentation ("flip" or "none")
    engine: str = ""
    tta: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedding": [round(float(v), 6) for v in self.embedding],
            "facial_area": self.facial_area.to_dict(),
            "model": self.model,
            "detector_backend": self.detector,
            "engine": self.engine,
            "tta": self.tta,
            "quality": None if self.quality is None else self.quality.to_dict(),
        }


def detect_faces(
    image: np.ndarray,
    detector_backend: str | Detector = DEFAULT_DETECTOR,
    upsample: int | None = None,
    thorough: bool = False,
) -> list[FacialArea]:
    """The faces in an RGB uint8 image, the main one first (see :func:`prominence`).

    With ``upsample=None`` a large image is first searched shrunk (faces at least an
    eighth of its short side; :meth:`~facegate.detection.base.Detector.find_coarse`),
    and searched again at higher resolution only when nothing is found at the lower
    one. ``thorough`` skips the shrunk search, so small faces beside a large one are
    found too (every face is wanted).
    """
    detector = get_detector(detector_backend)
    faces = detector.find_coarse(image) if upsample is None and not thorough else []
    faces = faces or detector.find(image, upsample)
    return sorted(faces, key=lambda f: prominence(f, image.shape), reverse=True)


def prominence(face: FacialArea, shape: tuple[int, ...]) -> float:
    """How much ``face`` looks like the photo's subject: its area, weighted down the
    farther it sits from the centre (a photographer frames the subject; a camera at a
    door sees the person in front of it near the middle). A face in the corner must be
    about 15 times the area of a face in the middle to come first."""
    height, width = shape[:2]
    off = np.hypot(face.x + face.w / 2 - width / 2, face.y + face.h / 2 - height / 2) / np.hypot(width, height)
    return float(face.area * np.exp(-((off / MAIN_FACE_SPREAD) ** 2) / 2))


def select_faces(faces: list[FacialArea], policy: MultiFacePolicy, label: str = "the image") -> list[FacialArea]:
    """Apply the several-faces policy to faces in :func:`detect_faces` order; no face
    at all is always an error."""
    if not faces:
        raise NoFaceError(f"no face found in {label}")
    if policy == "all":
        return faces
    if policy == "error" and len(faces) > 1:
        raise MultipleFacesError(f"{len(faces)} faces found in {label}; expected exactly one")
    if policy == "largest":
        return [max(faces, key=lambda f: f.area)]
    if policy not in ("main", "error"):
        raise ValueError(f"unknown multi-face policy {policy!r}; use main, largest, all or error")
    return faces[:1]


def embed_chips(model: EmbeddingModel, chips: Sequence[np.ndarray], tta: bool = False) -> np.ndarray:
    """Embeddings of aligned chips; with ``tta``, the model's test-time augmentation
    (for faces: each chip averaged with its mirror image)."""
    chips = list(chips)
    return model.embed_tta(chips) if tta else model.embed(chips)


def represent(
    img: ImageInput,
    model_name: str | EmbeddingModel = DEFAULT_MODEL,
    detector_backend: str | Detector = DEFAULT_DETECTOR,
    multi_face: MultiFacePolicy = DEFAULT_MULTI_FACE,
    upsample: int | None = None,
    tta: bool = DEFAULT_TTA,
    label: str = "the image",
) -> list[Face]:
    """Embeddings of the faces in one image, under the several-faces policy.

    ``model_name`` and ``detector_backend`` are registry names or instances (an instance
    carries what a name cannot, e.g. ``MODELS.create("omniglot", weights=PATH)``).
    """
    out = _represent_chunk(_Job(model_name, detector_backend, multi_face, upsample, tta), [(img, label)])[0]
    if isinstance(out, FacegateError):
        raise out
    return out


@dataclass(frozen=True)
class _Job:
    model_name: str | EmbeddingModel
    detector_backend: str | Detector
    multi_face: MultiFacePolicy
    upsample: int | None
    tta: bool


#: one image's detected faces, each with its chip and how many faces the image held; or its error
Found = list[tuple[FacialArea, np.ndarray, int]] | FacegateError


def _detect_chunk(job: _Job, chunk: list[tuple[ImageInput, str]]) -> list[Found]:
    """Decode, detect and align every image of a chunk."""
    model = get_model(job.model_name)
    found: list[Found] = []
    for img, label in chunk:
        try:
            image = load_image(img)
            detected = detect_faces(image, job.detector_backend, job.upsample, thorough=job.multi_face == "all")
            faces = select_faces(detected, job.multi_face, label)
        except FacegateError as exc:
            found.append(exc)
            continue
        found.append([(f, model.chip(image, f), len(detected)) for f in faces])
    return found


def _embed_found(job: _Job, found: list[Found]) -> list[list[Face] | FacegateError]:
    """Embed every chip of a chunk in one model call, and make their :class:`Face` objects."""
    model = get_model(job.model_name)
    pending = [face for item in found if not isinstance(item, FacegateError) for face in item]
    detector = get_detector(job.detector_backend).name
    judged = model.faces and detector != "skip"  # landmarks of a real face detector: quality applies
    vectors = embed_chips(model, [chip for _, chip, _ in pending], tta=job.tta)
    settings = (model.engine_name, tta_name(job.tta))
    made = iter(
        Face(vector, f, model.name, detector, measure(f.landmarks, chip) if judged else None, n, *settings)
        for vector, (f, chip, n) in zip(vectors, pending, strict=True)
    )
    return [item if isinstance(item, FacegateError) else [next(made) for _ in item] for item in found]


def _represent_chunk(job: _Job, chunk: list[tuple[ImageInput, str]]) -> list[list[Face] | FacegateError]:
    return _embed_found(job, _detect_chunk(job, chunk))


def represent_many(
    images: Iterable[ImageInput],
    model_name: str | EmbeddingModel = DEFAULT_MODEL,
    detector_backend: str | Detector = DEFAULT_DETECTOR,
    multi_face: MultiFacePolicy = DEFAULT_MULTI_FACE,
    upsample: int | None = None,
    tta: bool = DEFAULT_TTA,
    batch_size: int = 16,
    workers: int | None = None,
    progress: bool = False,
    labels: Sequence[str] | None = None,
) -> list[list[Face] | FacegateError]:
    """Embeddings for many images: one entry per image, its faces or the error it raised.

    Images go in chunks of ``batch_size`` to ``workers`` processes (``None``: one per
    CPU core); each decodes, detects and aligns its chunk and embeds all the chunk's
    chips with one network call. (Embedding every chunk here instead, with one copy of
    the network, was measured 17% slower on 2 cores: 64 against 76 images/s on 500 LFW
    photos, this process's single network thread becoming the bottleneck.) Errors are
    returned in place, not raised, so one bad photo does not stop a run.
    """
    images = list(images)
    names = list(labels) if labels is not None else [f"image {i}" for i in range(len(images))]
    job = _Job(model_name, detector_backend, multi_face, upsample, tta)
    get_model(model_name)  # fail fast on an unknown model, before any worker starts
    get_detector(detector_backend)
    items = list(zip(images, names, strict=True))
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    n_workers = min(len(chunks), (os.cpu_count() or 1) if workers is None else max(1, workers))
    if not (isinstance(model_name, str) and isinstance(detector_backend, str)):
        n_workers = 1  # an instance given in code lives in this process; workers build theirs from names

    results: list[list[Face] | FacegateError] = []
    with _progress(len(images), progress) as bar:
        if n_workers <= 1:
            for chunk in chunks:
                results.extend(_represent_chunk(job, chunk))
                bar.update(len(chunk))
            return results
        context = worker_context()
        plugins = sorted(MODELS.modules() | DETECTORS.modules())
        with ProcessPoolExecutor(
            n_workers, mp_context=context, initializer=start_worker, initargs=(os.getpid(), plugins)
        ) as executor:
            for out in executor.map(_represent_chunk, [job] * len(chunks), chunks):
                results.extend(out)
                bar.update(len(out))
    return results


def worker_context():
    """How worker processes start: from a fork server on Linux, never by forking this
    process, whose native thread pools (ONNX Runtime, dlib's CNN) a forked child would
    inherit mid-state and could deadlock on; spawned elsewhere."""
    if sys.platform == "linux":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["facegate.pipeline"])
        return context
    return multiprocessing.get_context("spawn")


def start_worker(parent: int, plugins: Sequence[str]) -> None:
    """In a worker process: see the same registries as the parent (import the modules
    that registered models and detectors), and end when the parent ends."""
    for module in plugins:
        importlib.import_module(module)
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """End this process soon after ``parent`` ends, even by SIGKILL, so no worker
    outlives an interrupted run. A fork-server worker is the server's child, not the
    parent's, and the server outlives its clients' workers, so a daemon thread checks
    twice a second that ``parent`` is still there; a direct child also asks Linux for
    SIGKILL when its parent dies."""
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG

    def watch() -> None:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:  # the process that asked for this worker is gone
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="facegate-parent-watch", daemon=True).start()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="img", desc="embedding")
