"""Pretrained files shipped by PyPI packages, loaded once per process."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

from facegate.errors import ModelUnavailableError


def model_file(name: str) -> Path:
    """Path of a model file inside the ``face_recognition_models`` package."""
    # Found without importing it: its __init__ needs pkg_resources, which recent
    # setuptools no longer ships.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - core dependency
        raise ModelUnavailableError("face_recognition_models is not installed; pip install face_recognition_models")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():  # pragma: no cover - broken install
        raise ModelUnavailableError(f"{path} is missing; reinstall face_recognition_models")
    return path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks (weights files run to hundreds of MB)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@cache
def shape_predictor_5():  # -> dlib.shape_predictor
    import dlib

    return dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat")))


@cache
def shape_predictor_68():  # -> dlib.shape_predictor
    import dlib

    return dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))


@cache
def face_recognition_resnet():  # -> dlib.face_recognition_model_v1
    import dlib

    return dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))


@cache
def mmod_detector():  # -> dlib.cnn_face_detection_model_v1
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_file("mmod_human_face_detector.dat")))
