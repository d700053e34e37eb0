"""Typed errors raised by facegate.

Every failure a user can cause (a bad image, no face, an unknown person, a gallery
built with another model) is one of these, so callers can catch ``FacegateError``
and never see a traceback from a third-party library.
"""

from __future__ import annotations


class FacegateError(Exception):
    """Base class of every error facegate raises on purpose."""

    #: process exit code the CLI uses for this error
    exit_code: int = 10


class ImageError(FacegateError, ValueError):
    """The input could not be read as an image."""

    exit_code = 4


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit (decompression bomb guard)."""


class InvalidImageError(ImageError):
    """The data is not an image in a format facegate decodes, or its decoder failed on it."""


class NoFaceError(FacegateError):
    """No face was found in an image that needs one."""

    exit_code = 3


class MultipleFacesError(FacegateError):
    """Several faces were found where the policy asks for exactly one."""

    exit_code = 3


class UnknownNameError(FacegateError, KeyError):
    """A registry (detectors, models, metrics) has no entry of that name."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class GalleryError(FacegateError):
    """A gallery operation could not be done; the gallery is unchanged."""

    exit_code = 5


class PersonNotFoundError(GalleryError, KeyError):
    """The named person is not enrolled."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidNameError(GalleryError, ValueError):
    """A person's name is empty, padded with spaces or holds control characters."""


class DuplicatePersonError(GalleryError):
    """A person of that name is already enrolled."""


class ModelMismatchError(GalleryError):
    """The gallery was built with another embedding model."""


class ModelUnavailableError(FacegateError):
    """A model cannot run here (missing weights or optional dependency)."""

    exit_code = 6


class MissingExtraError(ModelUnavailableError):
    """An optional dependency is not installed (torch for ``[train]``, fastapi for ``[serve]``)."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """A path given as an image does not exist."""


class DuplicateTemplateError(GalleryError):
    """The same photo is already enrolled for that person."""


class PoorQualityError(FacegateError):
    """The face is too small, turned or blurred to decide on: try again (not a "no")."""

    exit_code = 7

    def __init__(self, message: str, quality: dict | None = None) -> None:
        super().__init__(message)
        self.quality = quality or {}


class GalleryUnavailableError(GalleryError):
    """The gallery's file cannot be used right now (read-only, disk full, damaged, held too long by another
    process): the gallery is unchanged, and the fault is not the request's."""


class LockedOutError(FacegateError):
    """Door checks for this name are locked after too many refusals in a row (throttling): no match was tried."""

    exit_code = 1

    def __init__(self, message: str, name: str = "", until: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.until = until


class UploadTooLargeError(FacegateError):
    """A request's body is over the service's upload limit."""

    exit_code = 4


class ApiKeyNotFoundError(GalleryError, KeyError):
    """No API key of that id is stored in the gallery."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StreamError(FacegateError):
    """A video source (webcam, file, network stream) cannot be opened, or was lost and could not be reopened."""

    exit_code = 8


class LivenessInputError(FacegateError, ValueError):
    """A liveness check was given nothing it can judge: no frames, or frame times that are not
    numbers, go backwards, or are given for some frames only."""

    exit_code = 4
