"""Image loading: anything a user may hand us, to an RGB uint8 array.

Accepted: a path, raw encoded bytes (``bytes``, ``bytearray``, ``memoryview``), a
base64 string or ``data:`` URI, a numpy array (RGB or grey; uint8, uint16, bool,
other integers up to 65535, or float in [0, 1]) or a PIL image. Only the formats in
:data:`FORMATS` are decoded (JPEG, PNG, WebP, BMP, TIFF, GIF, PBM/PGM/PPM). EXIF
orientation is applied; grey, RGBA, palette, 16-bit and CMYK images are converted.
Anything that is not an image, is larger than ``MAX_PIXELS`` or more elongated than
``MAX_ASPECT_RATIO``, raises :class:`~facegate.errors.ImageError`, never a
third-party exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from os import PathLike
from pathlib import Path
from typing import Union

import numpy as np
from PIL import (  # the decoders of FORMATS, registered before Image.open is asked for them
    BmpImagePlugin,  # noqa: F401
    GifImagePlugin,  # noqa: F401
    Image,
    ImageOps,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    PpmImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    UnidentifiedImageError,
    WebPImagePlugin,  # noqa: F401
)

from facegate.errors import ImageError, ImageNotFoundError, ImageTooLargeError, InvalidImageError

#: images with more pixels than this are refused (decompression-bomb guard): 64 MP
MAX_PIXELS = 64_000_000
#: images over ELONGATED_FROM pixels long and more than this many times longer than wide (or wider than
#: long) are refused: no photo of a face is, and detectors' memory grows with the long side
MAX_ASPECT_RATIO = 20
ELONGATED_FROM = 4096
#: file names of the images facegate reads from folders (the suffixes of FORMATS)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".pbm"})
#: the formats users send; every other Pillow plugin (DDS, PSD, ICNS, ...) is never tried
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM")  # JPEG's decoder also reads MPO

ImageInput = Union[str, PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image]

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")
_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


def load_image(source: ImageInput, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``source`` into a C-contiguous RGB uint8 array of shape (H, W, 3)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, np.ndarray):
        return _from_array(np.asarray(source), limit)  # np.matrix and other subclasses as plain arrays
    if isinstance(source, Image.Image):
        return _from_pil(source, limit)
    return _from_pil(_open(read_bytes(source)), limit)


def read_bytes(source: str | PathLike | bytes | bytearray | memoryview) -> bytes:
    """The encoded bytes behind a path, base64 string, data URI or bytes object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, PathLike):
        return _read_path(Path(source))
    if not isinstance(source, str):
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    if _DATA_URI.match(source):
        return _b64decode(source.split(",", 1)[1])
    path = Path(source).expanduser()
    if _exists(path):
        return _read_path(path)
    if len(source) >= 32 and _BASE64.match(source):
        return _b64decode(source)
    raise ImageNotFoundError(f"no such image file: {source[:200]}")


def image_sha256(source: ImageInput) -> str:
    """Hex SHA-256 of the encoded bytes (or, for arrays and PIL images, the pixels)."""
    if isinstance(source, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    if isinstance(source, Image.Image):
        return hashlib.sha256(source.tobytes()).hexdigest()
    return hashlib.sha256(read_bytes(source)).hexdigest()


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long, or with a NUL byte, is no file
        return False


def _read_path(path: Path) -> bytes:
    if not path.exists():
        raise ImageNotFoundError(f"no such image file: {path}")
    if not path.is_file():
        raise ImageError(f"not a file: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _b64decode(text: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        padded = cleaned + "=" * (-len(cleaned) % 4)
        altchars = b"-_" if "-" in cleaned or "_" in cleaned else None
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError("the string is neither an existing file path nor valid base64 image data") from exc


def _open(data: bytes) -> Image.Image:
    if not data:
        raise InvalidImageError("empty image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"the data is not an image in a supported format ({', '.join(FORMATS)})") from exc
    except Exception as exc:  # any decoder failure on hostile data is the input's fault, typed
        raise InvalidImageError(f"cannot decode the image: {type(exc).__name__}: {exc}") from exc


def _check_size(width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"the image is empty ({width}x{height})")
    if width * height > limit:
        raise ImageTooLargeError(
            f"the image has {width}x{height} = {width * height:,} pixels, over the limit of {limit:,}"
        )
    if max(width, height) > ELONGATED_FROM and max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImageError(
            f"the image is {width}x{height}: more than {MAX_ASPECT_RATIO} times longer than wide is no photo of a face"
        )


def _from_pil(image: Image.Image, limit: int) -> np.ndarray:
    _check_size(*image.size, limit)
    try:
        image = ImageOps.exif_transpose(image) or image
        image.load()
        rgb = _to_rgb(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except MemoryError as exc:
        raise ImageTooLargeError("the image needs more memory to decode than there is") from exc
    except Exception as exc:  # any decoder failure on hostile data is the input's fault, typed
        raise InvalidImageError(f"cannot decode the image: {type(exc).__name__}: {exc}") from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _from_array_rgb(np.asarray(image))
    if mode == "F":
        return _from_array_rgb(np.asarray(image))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return image.convert("RGB")
    return image.convert("RGB")


def _from_array_rgb(array: np.ndarray) -> Image.Image:
    return Image.fromarray(_array_to_rgb(array))


def _from_array(array: np.ndarray, limit: int) -> np.ndarray:
    if array.ndim not in (2, 3):
        raise ImageError(f"an image array must be (H, W) or (H, W, C); got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], limit)
    return _array_to_rgb(array)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        raise ImageError(f"an image array needs 1, 3 or 4 channels; got {array.shape[2]}")
    if array.ndim == 2:
        array = array[:, :, None]
    data = _to_uint8(array)
    if data.shape[2] == 1:
        data = np.repeat(data, 3, axis=2)
    elif data.shape[2] == 4:
        alpha = data[:, :, 3:4].astype(np.float32) / 255.0
        data = (data[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(data)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        top = 255 if array.size == 0 or array.max() <= 255 else 65535
        if array.size and array.min() < 0:
            raise ImageError("integer image arrays must not hold negative values")
        if array.size and array.max() > 65535:
            raise ImageError(
                f"integer image arrays must hold values up to 65535 (16 bits); this one reaches {array.max()}"
            )
        return (array.astype(np.float64) * (255.0 / top)).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("the image array holds NaN or infinite values")
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if lo < 0.0 or hi > 255.0:
            raise ImageError("float image arrays must hold values in [0, 1] (or [0, 255])")
        scale = 255.0 if hi <= 1.0 else 1.0
        return (array * scale).round().astype(np.uint8)
    raise ImageError(f"unsupported image array dtype {array.dtype}")
