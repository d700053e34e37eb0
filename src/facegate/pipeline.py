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
from typing import Any, Literal

import numpy as np

from facegate.decisions.quality import FaceQuality, measure
from facegate.detection import DETECTORS, FacialArea, get_detector
from facegate.errors import FacegateError, MultipleFacesError, NoFaceError
from facegate.images import ImageInput, load_image
from facegate.models import MODELS, EmbeddingModel, get_model

MultiFacePolicy = Literal["largest", "all", "error"]

DEFAULT_MODEL = "dlib-resnet"
DEFAULT_DETECTOR = "hog"
#: average each face's embedding with its mirror image's (test-time augmentation):
#: about 1.8x the CPU time of a plain pass, fewer errors on LFW (see bench/lfw_accuracy.py)
DEFAULT_TTA = True


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "embedding": [round(float(v), 6) for v in self.embedding],
            "facial_area": self.facial_area.to_dict(),
            "model": self.model,
            "detector_backend": self.detector,
            "quality": None if self.quality is None else self.quality.to_dict(),
        }


def detect_faces(
    image: np.ndarray, detector_backend: str = DEFAULT_DETECTOR, upsample: int | None = None
) -> list[FacialArea]:
    """Every face in an RGB uint8 image, largest first.

    With ``upsample=None`` the image is searched again at higher resolution only
    when nothing is found at the lower one.
    """
    faces = get_detector(detector_backend).find(image, upsample)
    return sorted(faces, key=lambda f: f.area, reverse=True)


def select_faces(faces: list[FacialArea], policy: MultiFacePolicy, label: str = "the image") -> list[FacialArea]:
    """Apply the several-faces policy; no face at all is always an error."""
    if not faces:
        raise NoFaceError(f"no face found in {label}")
    if policy == "all":
        return faces
    if policy == "error" and len(faces) > 1:
        raise MultipleFacesError(f"{len(faces)} faces found in {label}; expected exactly one")
    if policy not in ("largest", "error"):
        raise ValueError(f"unknown multi-face policy {policy!r}; use largest, all or error")
    return faces[:1]


def embed_chips(model: EmbeddingModel, chips: Sequence[np.ndarray], tta: bool = False) -> np.ndarray:
    """Embeddings of aligned chips; with ``tta``, the model's test-time augmentation
    (for faces: each chip averaged with its mirror image)."""
    chips = list(chips)
    return model.embed_tta(chips) if tta else model.embed(chips)


def represent(
    img: ImageInput,
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    multi_face: MultiFacePolicy = "largest",
    upsample: int | None = None,
    tta: bool = DEFAULT_TTA,
    label: str = "the image",
) -> list[Face]:
    """Embeddings of the faces in one image, under the several-faces policy."""
    out = _represent_chunk(_Job(model_name, detector_backend, multi_face, upsample, tta), [(img, label)])[0]
    if isinstance(out, FacegateError):
        raise out
    return out


@dataclass(frozen=True)
class _Job:
    model_name: str
    detector_backend: str
    multi_face: MultiFacePolicy
    upsample: int | None
    tta: bool


def _represent_chunk(job: _Job, chunk: list[tuple[ImageInput, str]]) -> list[list[Face] | FacegateError]:
    """Detect and align every image of a chunk, then embed all their chips in one call."""
    model = get_model(job.model_name)
    found: list[list[FacialArea] | FacegateError] = []
    pending: list[tuple[FacialArea, np.ndarray, int]] = []  # each face to embed: box, chip, faces in its image
    for img, label in chunk:
        try:
            image = load_image(img)
            detected = detect_faces(image, job.detector_backend, job.upsample)
            faces = select_faces(detected, job.multi_face, label)
        except FacegateError as exc:
            found.append(exc)
            continue
        found.append(faces)
        pending.extend((f, model.chip(image, f), len(detected)) for f in faces)
    judged = model.faces and job.detector_backend != "skip"  # landmarks of a real face detector: quality applies
    vectors = embed_chips(model, [chip for _, chip, _ in pending], tta=job.tta)
    made = iter(
        Face(vector, f, model.name, job.detector_backend, measure(f.landmarks, chip) if judged else None, n)
        for vector, (f, chip, n) in zip(vectors, pending, strict=True)
    )
    return [item if isinstance(item, FacegateError) else [next(made) for _ in item] for item in found]


def represent_many(
    images: Iterable[ImageInput],
    model_name: str = DEFAULT_MODEL,
    detector_backend: str = DEFAULT_DETECTOR,
    multi_face: MultiFacePolicy = "largest",
    upsample: int | None = None,
    tta: bool = DEFAULT_TTA,
    batch_size: int = 16,
    workers: int | None = None,
    progress: bool = False,
    labels: Sequence[str] | None = None,
) -> list[list[Face] | FacegateError]:
    """Embeddings for many images: one entry per image, its faces or the error it raised.

    Images go in chunks of ``batch_size`` to ``workers`` processes (``None``: one per
    CPU core), each detecting, aligning and embedding its chunk with one model call.
    Errors are returned in place, not raised, so one bad photo does not stop a run.
    """
    images = list(images)
    names = list(labels) if labels is not None else [f"image {i}" for i in range(len(images))]
    job = _Job(model_name, detector_backend, multi_face, upsample, tta)
    get_model(model_name)  # fail fast on an unknown model, before any worker starts
    get_detector(detector_backend)
    items = list(zip(images, names, strict=True))
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    n_workers = min(len(chunks), (os.cpu_count() or 1) if workers is None else max(1, workers))

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
