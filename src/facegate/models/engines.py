"""How dlib's face ResNet runs: on ONNX Runtime (the default) or in dlib itself.

``onnx`` converts ``dlib_face_recognition_resnet_model_v1.dat`` (from
``face_recognition_models``) into an ONNX graph on first use
(:mod:`facegate.models.dlib_format`, :mod:`facegate.models.onnx_export`), keeps it in
the user cache folder under the source file's SHA-256, and runs batches on ONNX
Runtime's CPU provider: the same descriptors as dlib to within 1e-6, several times
faster than the ``dlib-bin`` wheel, which is built without BLAS. ``dlib`` calls
``compute_face_descriptor`` and stays for comparison and as a fallback.

Chosen by ``$FACEGATE_ENGINE`` (default :data:`DEFAULT_ENGINE`); ONNX Runtime's
threads per process by ``$FACEGATE_ONNX_THREADS`` (default 1: parallelism comes from
worker processes).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facegate import paths
from facegate.errors import ModelUnavailableError
from facegate.registry import Registry
from facegate.resources import face_recognition_resnet, file_sha256, model_file

log = logging.getLogger("facegate")

DEFAULT_ENGINE = "onnx"
ENGINE_ENV = "FACEGATE_ENGINE"
THREADS_ENV = "FACEGATE_ONNX_THREADS"
SOURCE = "dlib_face_recognition_resnet_model_v1.dat"


class Engine(ABC):
    """Runs dlib's face ResNet on aligned 150x150 RGB uint8 chips."""

    name: ClassVar[str]

    def weights_id(self) -> str:
        """The fingerprint of the weights it runs: every engine runs the same file."""
        return f"sha256:{source_digest()[:16]}"

    @abstractmethod
    def descriptors(self, chips: list[np.ndarray]) -> np.ndarray:
        """dlib's raw 128-d descriptors (not unit length), float32 (len(chips), 128)."""

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name}


ENGINES: Registry[Engine] = Registry("engine")


@ENGINES.register("dlib")
class DlibEngine(Engine):
    """dlib's own ``compute_face_descriptor``."""

    name = "dlib"

    def descriptors(self, chips: list[np.ndarray]) -> np.ndarray:
        batch = [np.ascontiguousarray(c, dtype=np.uint8) for c in chips]
        return np.asarray(face_recognition_resnet().compute_face_descriptor(batch), dtype=np.float32)


@ENGINES.register("onnx")
class OnnxEngine(Engine):
    """The same network converted to ONNX, on ONNX Runtime (CPU)."""

    name = "onnx"

    def __init__(self, threads: int | None = None, cache_dir: str | Path | None = None) -> None:
        self.threads = onnx_threads(threads)
        self.path, self.conversion = converted_model(cache_dir)
        self._session = OnnxSession(self.path, self.threads)

    def descriptors(self, chips: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([np.asarray(c, dtype=np.float32) for c in chips]).transpose(0, 3, 1, 2)
        return self._session.get().run(["descriptor"], {"image": np.ascontiguousarray(batch)})[0].astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "threads": self.threads, "model": str(self.path), **self.conversion}


def onnx_threads(threads: int | str | None = None) -> int:
    """ONNX Runtime threads per process: ``threads``, else ``$FACEGATE_ONNX_THREADS``, else 1."""
    chosen = int(threads if threads not in (None, "") else os.environ.get(THREADS_ENV) or 1)
    if chosen < 1:
        raise ModelUnavailableError(f"ONNX Runtime needs at least one thread, got {chosen}")
    return chosen


class OnnxSession:
    """An ONNX Runtime CPU session of one file, made when first used in each process
    (a session is never shared across fork())."""

    def __init__(self, path: str | Path, threads: int) -> None:
        self.path = Path(path)
        self.threads = threads
        self._session: Any = None
        self._pid = -1

    def get(self) -> Any:
        if self._pid != os.getpid():
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # warnings about unused initializers are noise here
            self._session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self._pid = os.getpid()
        return self._session


def cache_dir() -> Path:
    """Where converted models are kept: ``$FACEGATE_CACHE/onnx``, else ``$XDG_CACHE_HOME/facegate/onnx``
    (``~/.cache/facegate/onnx``; :func:`facegate.paths.cache_dir`)."""
    return paths.cache_dir("onnx")


@cache
def source_digest() -> str:
    """SHA-256 of dlib's face ResNet file (read once per process)."""
    return file_sha256(model_file(SOURCE))


def converted_model(directory: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The ONNX file of dlib's face ResNet, converting it on first use, and how it was made."""

    def build(source: Path) -> bytes:
        from facegate.models.dlib_format import load_network
        from facegate.models.onnx_export import build_model

        return build_model(load_network(source)).SerializeToString()

    return cached_conversion(model_file(SOURCE), build, directory, digest=source_digest())


def cached_conversion(
    source: Path, build: Callable[[Path], bytes], directory: str | Path | None = None, digest: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """``build(source)`` saved as ``<stem>-<sha256[:16]>.onnx`` in :func:`cache_dir` (or
    ``directory``), made once; beside it a ``.json`` records the source, its SHA-256 and
    ``conversion_seconds``. An unwritable default cache falls back to the temporary folder."""
    digest = digest or file_sha256(source)
    folder = Path(directory) if directory is not None else cache_dir()
    target = folder / f"{source.stem}-{digest[:16]}.onnx"
    notes = target.with_suffix(".json")
    if target.is_file() and notes.is_file():
        return target, json.loads(notes.read_text(encoding="utf-8"))
    start = time.perf_counter()
    graph = build(source)
    seconds = round(time.perf_counter() - start, 2)
    info = {"source": str(source), "source_sha256": digest, "conversion_seconds": seconds}
    try:
        _write(folder, target, graph, notes, info)
    except OSError as exc:  # an unwritable cache: keep the conversion in the temporary folder instead
        if directory is not None:
            raise ModelUnavailableError(f"cannot write the converted model to {folder}: {exc}") from exc
        folder = Path(tempfile.gettempdir()) / "facegate-onnx"
        target, notes = folder / target.name, folder / notes.name
        _write(folder, target, graph, notes, info)
    log.info("converted %s to ONNX in %.2f s: %s", source.name, seconds, target)
    return target, info


def _write(folder: Path, target: Path, graph: bytes, notes: Path, info: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path, data in ((target, graph), (notes, json.dumps(info, indent=2).encode())):
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")  # atomic: workers may convert at once
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)


def engine_choice(name: str | None = None) -> str:
    """The engine named, else ``$FACEGATE_ENGINE``, else :data:`DEFAULT_ENGINE`; an unknown
    name is an :class:`~facegate.errors.UnknownNameError`. dlib's networks (the face
    ResNet, the MMOD detector) all run on the engine chosen here."""
    chosen = name or os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE
    ENGINES.get(chosen)
    return chosen


def get_engine(name: str | None = None) -> Engine:
    """The engine :func:`engine_choice` picks, built."""
    return ENGINES.create(engine_choice(name))
