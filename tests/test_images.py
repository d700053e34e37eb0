"""Image loading: every accepted input form, every conversion, every refusal."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from facegate.errors import ImageError, ImageNotFoundError, ImageTooLargeError
from facegate.images import image_sha256, load_image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def gradient(w: int = 40, h: int = 30) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.uint8)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = x
    img[..., 1] = 255 - x
    img[..., 2] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    return img


def test_path_bytes_base64_and_data_uri_agree(tmp_path):
    pixels = gradient()
    data = encode(Image.fromarray(pixels))
    path = tmp_path / "g.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    for source in (path, str(path), data, bytearray(data), b64, "data:image/png;base64," + b64):
        np.testing.assert_array_equal(load_image(source), pixels)


def test_pil_image_and_array_inputs():
    pixels = gradient()
    np.testing.assert_array_equal(load_image(Image.fromarray(pixels)), pixels)
    out = load_image(pixels)
    np.testing.assert_array_equal(out, pixels)
    assert out.flags.c_contiguous and out.dtype == np.uint8


def test_exif_orientation_is_applied():
    pixels = gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    data = encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    assert out.shape == (40, 30, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_modes_convert_to_rgb(mode):
    if mode == "I;16":
        image = Image.fromarray(gradient()[..., 0].astype(np.uint16) * 257)
    else:
        image = Image.fromarray(gradient()).convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    out = load_image(encode(image, fmt))
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8


def test_16_bit_scales_to_8_bit():
    grey16 = np.full((8, 8), 65535, np.uint16)
    assert load_image(encode(Image.fromarray(grey16))).min() == 255
    assert load_image(grey16).min() == 255


def test_transparent_pixels_become_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    assert (load_image(rgba) == 255).all()
    assert (load_image(encode(Image.fromarray(rgba))) == 255).all()


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((5, 5), np.bool_),
        np.zeros((5, 5, 1), np.uint8),
        np.ones((5, 5, 3), np.float32),
        np.zeros((5, 5), np.int64),
    ],
)
def test_array_dtypes_and_shapes(array):
    assert load_image(array).shape == (5, 5, 3)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"not an image at all",
        "no/such/file.jpg",
        "data:image/png;base64,@@@@",
        np.zeros((5, 5, 2), np.uint8),
        np.zeros((2, 2, 2, 2), np.uint8),
        np.full((3, 3), np.nan),
        np.full((3, 3), -1.0),
        np.zeros((0, 4, 3), np.uint8),
        12345,
    ],
)
def test_bad_inputs_raise_typed_errors(bad):
    with pytest.raises(ImageError):
        load_image(bad)


def test_missing_file_is_also_a_file_not_found_error():
    with pytest.raises(FileNotFoundError):
        load_image("/definitely/missing.png")
    assert issubclass(ImageNotFoundError, ImageError)


def test_truncated_file_is_an_image_error():
    data = encode(Image.fromarray(gradient()), "JPEG")
    with pytest.raises(ImageError):
        load_image(data[:40])


def test_decompression_bomb_is_refused_before_decoding():
    big = encode(Image.new("L", (3000, 3000)))  # small file, 9 MP
    with pytest.raises(ImageTooLargeError):
        load_image(big, max_pixels=1_000_000)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((2000, 1000), np.uint8), max_pixels=1_000_000)
    assert load_image(big).shape == (3000, 3000, 3)


def test_sha256_is_of_the_encoded_bytes(tmp_path):
    data = encode(Image.fromarray(gradient()))
    (tmp_path / "a.png").write_bytes(data)
    assert image_sha256(tmp_path / "a.png") == image_sha256(data)
    assert image_sha256(data) != image_sha256(data + b"x")


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([1, 3, 4]))))
def test_any_uint8_array_loads_to_rgb_of_same_size(array):
    out = load_image(array)
    assert out.shape == (*array.shape[:2], 3) and out.dtype == np.uint8
    if array.shape[2] == 3:
        np.testing.assert_array_equal(out, array)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_foreign_exceptions(blob):
    try:
        out = load_image(blob)
    except ImageError:
        return  # the only exception type allowed out
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
