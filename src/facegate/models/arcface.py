"""ArcFace-style face-recognition ONNX files a user brings, run on ONNX Runtime.

insightface's recognition models (``w600k_r50.onnx`` of the ``buffalo_l`` pack,
``w600k_mbf.onnx`` of ``buffalo_s``, ...) and OpenCV's SFace take a 112x112 face aligned
on ArcFace's five-point template (:mod:`facegate.alignment_arcface`) and return one
vector per face; facegate L2-normalises it and compares with the cosine distance.

Registered names: ``arcface-onnx`` (any such file: ``weights=`` or
``$FACEGATE_ARCFACE_WEIGHTS``), and ``insightface-w600k-r50``, ``insightface-w600k-mbf``
and ``sface``, which also know where their file usually lives. facegate ships none of
these files and never downloads one. A file is looked for, in order, at ``weights=``,
then the model's environment variable, then (named models only) its usual places; the
first one given is the only one used, and a missing, unreadable or wrongly shaped file
is a :class:`~facegate.errors.ModelUnavailableError` that says where it looked.

Input: the file's only input, float32, NCHW ``(N, 3, S, S)`` or NHWC ``(N, S, S, 3)``
with S a multiple of 112 (or of 128, insightface's shifted template). Preprocessing
``(pixel - mean) / std`` per channel in RGB or BGR order is, in order: the options
``mean=``, ``std=``, ``channels=``; the named model's own; the table of known files
(:data:`KNOWN_FILES`, by file name); else insightface's own rule (``ArcFaceONNX``: a
graph that starts with ``Sub`` and ``Mul`` nodes normalises itself, mean 0 and std 1;
any other takes mean 127.5 and std 127.5), in RGB. The embedding length is the
output's size in the graph. No threshold comes with these files: calibrate one with
``facegate calibrate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from facegate.alignment_arcface import arcface_chip
from facegate.detection.base import FacialArea
from facegate.errors import ModelUnavailableError
from facegate.models.base import EmbeddingModel, as_chip
from facegate.models.engines import OnnxSession, onnx_threads
from facegate.models.registry import MODELS
from facegate.resources import file_sha256

#: insightface's model folder when ``$INSIGHTFACE_HOME`` is not set (its ``root='~/.insightface'``)
INSIGHTFACE_ROOT = "~/.insightface"
INSIGHTFACE_HOME_ENV = "INSIGHTFACE_HOME"


@dataclass(frozen=True)
class Preprocessing:
    """``(pixel - mean) / std``, the channels in ``order`` ("rgb" or "bgr")."""

    mean: float
    std: float
    order: str = "rgb"
    #: where these values came from
    source: str = ""


_INSIGHTFACE = Preprocessing(127.5, 127.5, "rgb", "insightface's ArcFaceONNX (mean 127.5, std 127.5, RGB)")
_SFACE = Preprocessing(0.0, 1.0, "rgb", "OpenCV's FaceRecognizerSF (raw 0-255 RGB)")

#: the preprocessing of files known by name
KNOWN_FILES: dict[str, Preprocessing] = {
    "w600k_r50.onnx": _INSIGHTFACE,  # buffalo_l, buffalo_m
    "w600k_mbf.onnx": _INSIGHTFACE,  # buffalo_s, buffalo_sc
    "glintr100.onnx": _INSIGHTFACE,  # antelopev2
    "face_recognition_sface_2021dec.onnx": _SFACE,
    "face_recognition_sface_2021dec_int8.onnx": _SFACE,
}


def _insightface_rule(path: Path) -> Preprocessing:
    """insightface's ``ArcFaceONNX`` guess: Sub and Mul among the first 8 nodes (an MXNet
    export that normalises inside the graph) mean 0 and std 1, else 127.5 and 127.5."""
    import onnx

    try:
        nodes = onnx.load(str(path), load_external_data=False).graph.node[:8]
    except Exception as exc:  # protobuf raises its own DecodeError; any failure means unreadable
        raise ModelUnavailableError(f"{path} is not a readable ONNX model: {exc}") from None
    sub = any(n.name.startswith(("Sub", "_minus")) for n in nodes)
    mul = any(n.name.startswith(("Mul", "_mul")) for n in nodes)
    if sub and mul:
        return Preprocessing(0.0, 1.0, "rgb", "insightface's rule: the graph normalises its input (Sub, Mul)")
    return Preprocessing(127.5, 127.5, "rgb", "insightface's rule: mean 127.5, std 127.5, RGB")


def insightface_roots() -> list[Path]:
    """``$INSIGHTFACE_HOME`` (when set) and ``~/.insightface``, the folders holding ``models/<pack>/``."""
    roots = [os.environ.get(INSIGHTFACE_HOME_ENV) or "", INSIGHTFACE_ROOT]
    out: list[Path] = []
    for root in roots:
        if root and Path(root).expanduser() not in out:
            out.append(Path(root).expanduser())
    return out


@MODELS.register("arcface-onnx")
class ArcFaceOnnx(EmbeddingModel):
    """An ArcFace-style face-recognition ONNX file: 112x112 ArcFace chip to a unit vector.

    Options (strings accepted, as the CLI passes them): ``weights`` (the ``.onnx`` file),
    ``mean``, ``std``, ``channels`` ("rgb"/"bgr"), ``threads`` (ONNX Runtime threads,
    default ``$FACEGATE_ONNX_THREADS`` or 1) and ``batch_size`` (default 32).
    """

    name = "arcface-onnx"
    dim = 512  # replaced by the file's output size on construction
    faces = True
    normalized = True
    default_metric = "cosine"
    engine_name = "onnx"

    #: environment variable naming the file when ``weights=`` is not given
    weights_env: ClassVar[str] = "FACEGATE_ARCFACE_WEIGHTS"
    #: the usual file name (named models), looked for in :attr:`packs` or the current folder
    file_name: ClassVar[str | None] = None
    #: insightface model packs (``<root>/models/<pack>/``) that hold the file
    packs: ClassVar[tuple[str, ...]] = ()
    #: look for the file in the current folder too
    in_current_folder: ClassVar[bool] = False
    #: the preprocessing the named model's file needs, whatever the file is called
    preprocessing: ClassVar[Preprocessing | None] = None
    #: what the file is, for messages
    about: ClassVar[str] = "an ArcFace-style face-recognition ONNX file (112x112 aligned face in, one vector out)"

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        mean: float | str | None = None,
        std: float | str | None = None,
        channels: str | None = None,
        threads: int | str | None = None,
        batch_size: int | str = 32,
    ) -> None:
        self.weights = self.find(weights)
        self.threads = onnx_threads(threads)
        self.batch_size = max(1, int(batch_size))
        self._session = OnnxSession(self.weights, self.threads)
        session = self._run()
        self._read_input(session)
        self.output_name = session.get_outputs()[0].name
        self.dim = self._output_size(session)  # type: ignore[misc]
        self.prep = self._preprocessing(mean, std, channels)

    # -- finding and checking the file ----------------------------------------------
    @classmethod
    def places(cls) -> list[Path]:
        """Where the file is looked for when neither ``weights=`` nor the variable gives it."""
        if cls.file_name is None:
            return []
        found = [root / "models" / pack / cls.file_name for root in insightface_roots() for pack in cls.packs]
        if cls.in_current_folder:
            found.append(Path.cwd() / cls.file_name)
        return found

    @classmethod
    def find(cls, weights: str | os.PathLike[str] | None = None) -> Path:
        """The model file: ``weights``, else ``$<weights_env>``, else the first of :meth:`places` that exists."""
        if weights not in (None, ""):
            return cls._given(Path(weights).expanduser(), "weights=")
        env = os.environ.get(cls.weights_env)
        if env:
            return cls._given(Path(env).expanduser(), f"${cls.weights_env}")
        places = cls.places()
        for place in places:
            if place.is_file():
                return place
        looked = ["weights= (not given)", f"${cls.weights_env} (not set)"]
        looked += [f"{p} (no such file)" for p in places]
        raise ModelUnavailableError(
            f"{cls.name} needs {cls.about}, and facegate ships none and downloads none. Looked at: "
            + "; ".join(looked)
            + f". Give the file as weights=PATH (get_model({cls.name!r}, weights=PATH)) or set "
            f"{cls.weights_env}=PATH (what the CLI, verify and Gallery read)"
            + (f", or put it at {places[0]}" if places else "")
            + "."
        )

    @classmethod
    def _given(cls, path: Path, what: str) -> Path:
        if not path.exists():
            raise ModelUnavailableError(f"{cls.name}: {what} names {path}, which does not exist")
        if not path.is_file():
            raise ModelUnavailableError(f"{cls.name}: {what} names {path}, which is not a file (give the .onnx file)")
        return path.absolute()  # worker processes and later calls may run in another folder

    def weights_id(self) -> str:
        """SHA-256 of the file (its first 16 hex digits): another file under the same name
        makes other embeddings."""
        if not hasattr(self, "_digest"):
            self._digest = f"sha256:{file_sha256(self.weights)[:16]}"
        return self._digest

    def _run(self) -> Any:
        """This process's ONNX Runtime session of the file."""
        try:
            return self._session.get()
        except Exception as exc:  # ONNX Runtime raises its own exception types for bad files
            raise ModelUnavailableError(
                f"{self.name}: {self.weights} is not an ONNX model ONNX Runtime can load: {exc}"
            ) from None

    def _read_input(self, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelUnavailableError(f"{self.name}: {self.weights} has {len(inputs)} inputs ({names}); expected one")
        spec = inputs[0]
        shape = list(spec.shape)
        bad = ModelUnavailableError(
            f"{self.name}: {self.weights} takes {spec.type} of shape {shape}; expected a float image batch "
            "(N, 3, 112, 112) or (N, 112, 112, 3) (sides a multiple of 112 or 128)"
        )
        if spec.type != "tensor(float)" or len(shape) != 4:
            raise bad
        if shape[1] == 3:
            self.layout, sides = "NCHW", shape[2:4]
        elif shape[3] == 3:
            self.layout, sides = "NHWC", shape[1:3]
        else:
            raise bad
        fixed = [s for s in sides if isinstance(s, int)]
        size = fixed[0] if fixed else 112  # symbolic sides: ArcFace's 112
        if any(s != size for s in fixed) or not (size % 112 == 0 or size % 128 == 0):
            raise bad
        self.input_name, self.input_shape, self.chip_size = spec.name, shape, int(size)
        #: a batch size fixed in the graph (1 for some exports) is honoured by running that many at a time
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def _output_size(self, session: Any) -> int:
        shape = session.get_outputs()[0].shape
        dims = shape[1:]
        if dims and all(isinstance(d, int) and d > 0 for d in dims):
            return int(np.prod(dims))
        probe = np.zeros((self.fixed_batch or 1, *self._sample_shape()), np.float32)  # symbolic: run once to see
        try:
            out = session.run([self.output_name], {self.input_name: probe})[0]
        except Exception as exc:
            raise ModelUnavailableError(f"{self.name}: {self.weights} fails on a blank face: {exc}") from None
        return int(np.prod(out.shape[1:]))

    def _sample_shape(self) -> tuple[int, int, int]:
        s = self.chip_size
        return (3, s, s) if self.layout == "NCHW" else (s, s, 3)

    def _preprocessing(self, mean: Any, std: Any, channels: Any) -> Preprocessing:
        base = self.preprocessing or KNOWN_FILES.get(self.weights.name)
        if base is None and (mean in (None, "") or std in (None, "")):
            base = _insightface_rule(self.weights)
        base = base or Preprocessing(0.0, 1.0)
        order = (str(channels).strip().lower() if channels not in (None, "") else base.order) or "rgb"
        if order not in ("rgb", "bgr"):
            raise ValueError(f"channels must be 'rgb' or 'bgr', got {channels!r}")
        given = [k for k, v in (("mean", mean), ("std", std), ("channels", channels)) if v not in (None, "")]
        prep = Preprocessing(
            float(mean) if mean not in (None, "") else base.mean,
            float(std) if std not in (None, "") else base.std,
            order,
            base.source + (f", {', '.join(given)} given" if given else ""),
        )
        if prep.std == 0:
            raise ValueError("std must not be 0")
        return prep

    # -- the model -----------------------------------------------------------------
    def chip(self, image: np.ndarray, face: FacialArea) -> np.ndarray:
        return arcface_chip(image, face, size=self.chip_size)

    def preprocess(self, chips: list[np.ndarray]) -> np.ndarray:
        """The network's input for RGB uint8 chips: float32, normalised, in its channel order and layout."""
        batch = np.stack([as_chip(c, self.chip_size) for c in chips]).astype(np.float32)
        if self.prep.order == "bgr":
            batch = batch[..., ::-1]
        batch = (batch - np.float32(self.prep.mean)) / np.float32(self.prep.std)
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=np.float32)

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        session = self._run()
        step = self.fixed_batch or self.batch_size
        out = []
        for start in range(0, len(chips), step):
            batch = self.preprocess(list(chips[start : start + step]))
            short = step - len(batch) if self.fixed_batch else 0  # pad a fixed-size batch, drop the padding after
            if short:
                batch = np.concatenate([batch, np.zeros((short, *batch.shape[1:]), np.float32)])
            result = session.run([self.output_name], {self.input_name: batch})[0]
            out.append(np.asarray(result, dtype=np.float32).reshape(len(batch), -1)[: len(batch) - short])
        vectors = np.concatenate(out)
        if vectors.shape[1] != self.dim:
            raise ModelUnavailableError(
                f"{self.name}: {self.weights} returned {vectors.shape[1]} values, not {self.dim}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """What runs: the file, its input and output, and the preprocessing chosen."""
        return {
            "model": self.name,
            "weights": str(self.weights),
            "input": {"name": self.input_name, "shape": self.input_shape, "layout": self.layout},
            "dim": self.dim,
            "mean": self.prep.mean,
            "std": self.prep.std,
            "channels": self.prep.order,
            "preprocessing": self.prep.source,
            "threads": self.threads,
        }


@MODELS.register("insightface-w600k-r50")
class InsightFaceW600kR50(ArcFaceOnnx):
    """insightface's ResNet-50 ArcFace trained on WebFace600K (``buffalo_l``), 512-d."""

    name = "insightface-w600k-r50"
    weights_env = "FACEGATE_W600K_R50_WEIGHTS"
    file_name = "w600k_r50.onnx"
    packs = ("buffalo_l", "buffalo_m")
    preprocessing = _INSIGHTFACE
    about = "insightface's w600k_r50.onnx (in the buffalo_l and buffalo_m model packs)"


@MODELS.register("insightface-w600k-mbf")
class InsightFaceW600kMbf(ArcFaceOnnx):
    """insightface's MobileFaceNet ArcFace trained on WebFace600K (``buffalo_s``), 512-d."""

    name = "insightface-w600k-mbf"
    weights_env = "FACEGATE_W600K_MBF_WEIGHTS"
    file_name = "w600k_mbf.onnx"
    packs = ("buffalo_s", "buffalo_sc")
    preprocessing = _INSIGHTFACE
    about = "insightface's w600k_mbf.onnx (in the buffalo_s and buffalo_sc model packs)"


@MODELS.register("sface")
class SFace(ArcFaceOnnx):
    """OpenCV's SFace (``face_recognition_sface_2021dec.onnx`` of the OpenCV model zoo), 128-d."""

    name = "sface"
    weights_env = "FACEGATE_SFACE_WEIGHTS"
    file_name = "face_recognition_sface_2021dec.onnx"
    in_current_folder = True
    preprocessing = _SFACE
    about = "OpenCV zoo's face_recognition_sface_2021dec.onnx (models/face_recognition_sface of opencv_zoo)"
