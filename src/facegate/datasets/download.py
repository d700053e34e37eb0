"""Fetching public data files, refusing any whose checksum does not match.

A download goes to a temporary file beside the destination and is moved into place
only once its SHA-256 (or, where only that is published, MD5) matches; a file
already there with the right checksum is not fetched again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from facegate.errors import FacegateError


class ChecksumError(FacegateError):
    """A downloaded or existing file does not have the published checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """A public file: where it lives and the checksum(s) it must have."""

    name: str
    url: str
    sha256: str | None = None
    md5: str | None = None

    def __post_init__(self) -> None:
        if not (self.sha256 or self.md5):
            raise ValueError(f"{self.name}: a remote file needs a sha256 or md5 checksum")


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, remote: RemoteFile) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has ``remote``'s checksum (SHA-256 preferred)."""
    algorithm, expected = ("sha256", remote.sha256) if remote.sha256 else ("md5", remote.md5)
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(f"{path}: {algorithm} is {actual}, expected {expected} ({remote.url})")


def download(remote: RemoteFile, directory: str | Path, timeout: float = 60.0) -> Path:
    """``directory/<name>``, fetched from ``remote.url`` unless already there and verified."""
    folder = Path(directory).expanduser()
    target = folder / remote.name
    if target.is_file():
        try:
            verify_file(target, remote)
            return target
        except ChecksumError:
            pass  # fetch it again
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        verify_file(tmp, remote)
        os.replace(tmp, target)
    except OSError as exc:
        raise FacegateError(f"cannot download {remote.url}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
