"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``) on ONNX Runtime.

dlib's detector (``dnn_mmod_face_detection_ex.cpp``) is::

    loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>

The input layer packs the image and its ``pyramid_down<6>`` pyramid (each level 5/6 the
size of the one before, down to 5 rows) into one tiled image; the convolutions turn
that into a map of window scores; the loss layer keeps the scores above 0, maps each
one through the network and the tiling back to an 80x80 window in the image, and
suppresses the windows that overlap a better one. Here the convolutional part is an
ONNX graph (:func:`build_model`, converted from the ``.dat`` file on first use and
cached like the face ResNet, :func:`converted_model`); the rest is numpy, written
from dlib's sources to give the same numbers:

- ``pyramid_up`` (for ``upsample``), the pixel values of the tiled image and its
  bilinear resampling are bit-identical to dlib's (``resize_image``: float32 SIMD
  lanes, truncation to uint8) -- checked against ``dlib.resize_image`` in the tests;
- the layout of the tiles is ``compute_tiled_image_pyramid_details``;
- detection extraction is ``loss_mmod_::to_label``: threshold (``score >
  adjust_threshold``, 0 by default), the sliding-window box through the network
  (``map_output_to_input`` of each convolution) and ``tiled_pyramid_to_image``,
  sorting by score and dlib's greedy non-max suppression (``test_box_overlap``, whose
  "IoU" divides by the area of the two boxes' bounding box), boxes rounded as the
  dlib build rounds them (halves away from zero: a left edge at -4.5 is -5);
- ``cnn_face_detection_model_v1.__call__``'s mapping of boxes from the upsampled image
  back to the original (``pyramid_down<2>::rect_down``).

Only the convolutions' float32 sums differ (ONNX Runtime's kernels add in another
order than dlib's): scores (about 1 for a face) differ by at most 3e-6 over ~1,300
faces, and the boxes are identical, except where two overlapping windows at
neighbouring pyramid levels score within that noise of each other and the
suppression keeps the other one (1 image in 1,371 searches).

``$FACEGATE_ONNX_THREADS`` sets ONNX Runtime's threads (default 1), as for the face ResNet.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facegate.models.dlib_format import DlibFormatError, load_network
from facegate.models.engines import OnnxSession, cached_conversion, onnx_threads
from facegate.resources import model_file

log = logging.getLogger("facegate")

SOURCE = "mmod_human_face_detector.dat"
#: dlib's pyramid for this detector: ``pyramid_down<6>`` (a template parameter, not in the file)
PYRAMID_DOWN = 6
OPSET = 17


class MmodDetection(NamedTuple):
    """One detection, as dlib's ``mmod_rectangle``: inclusive pixel box and score."""

    left: int
    top: int
    right: int
    bottom: int
    confidence: float

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1


# --------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MmodNet:
    """What the detector needs from the ``.dat`` file besides the convolution weights."""

    layers: list[dict]
    avg: tuple[float, float, float]  # avg_red, avg_green, avg_blue (float32 values)
    padding: int
    outer_padding: int
    windows: list[tuple[int, int]]  # detector windows (width, height), one per output channel
    nms_iou: float
    nms_covered: float

    @classmethod
    def from_network(cls, net: dict) -> MmodNet:
        loss, inp = net["loss"], net["layers"][0]
        if loss["type"] != "loss_mmod" or inp["type"] != "input_rgb_image_pyramid":
            raise DlibFormatError(f"not an MMOD detector: {loss['type']} over {inp['type']}")
        if loss["use_bounding_box_regression"]:
            raise DlibFormatError("MMOD with bounding box regression is not supported")
        return cls(
            layers=net["layers"][1:],
            avg=(float(inp["avg_red"]), float(inp["avg_green"]), float(inp["avg_blue"])),
            padding=int(inp["pyramid_padding"]),
            outer_padding=int(inp["pyramid_outer_padding"]),
            windows=[(w["width"], w["height"]) for w in loss["detector_windows"]],
            nms_iou=loss["overlaps_nms"]["iou_thresh"],
            nms_covered=loss["overlaps_nms"]["percent_covered_thresh"],
        )

    @property
    def convolutions(self) -> list[dict]:
        return [layer for layer in self.layers if layer["type"] == "con"]

    def output_size(self, nr: int, nc: int) -> tuple[int, int]:
        for c in self.convolutions:
            nr = 1 + (nr + 2 * c["padding_y"] - c["nr"]) // c["stride_y"]
            nc = 1 + (nc + 2 * c["padding_x"] - c["nc"]) // c["stride_x"]
        return nr, nc

    def output_to_input(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dlib's ``output_tensor_to_input_tensor``: each convolution's ``map_output_to_input``."""
        x, y = x.astype(np.float64), y.astype(np.float64)
        for c in reversed(self.convolutions):
            x = x * c["stride_x"] - c["padding_x"] + c["nc"] // 2
            y = y * c["stride_y"] - c["padding_y"] + c["nr"] // 2
        return x, y


@cache
def load_net(path: str | None = None) -> MmodNet:
    """The detector in ``path`` (default: the ``face_recognition_models`` file)."""
    return MmodNet.from_network(load_network(path or model_file(SOURCE)))


def build_model(net: dict | MmodNet, opset: int = OPSET) -> onnx.ModelProto:
    """The convolutional part as an ONNX graph, each ``affine`` folded into its convolution.

    Input ``image``: float32 [N, 3, H, W], the tiled pyramid already preprocessed
    (``(pixel - channel mean) / 256``, zeros between tiles). Output ``scores``: float32
    [N, windows, h, w], the window scores before thresholding.
    """
    mmod = net if isinstance(net, MmodNet) else MmodNet.from_network(net)
    nodes, inits = [], []
    x = "image"
    layers = mmod.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        name = f"{layer['type']}_{i}"
        if layer["type"] == "con":
            w = layer["weight"].astype(np.float32)
            b = layer["bias"].astype(np.float32)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is not None and nxt["type"] == "affine" and nxt["mode"] == "CONV_MODE":
                g = nxt["gamma"].reshape(-1).astype(np.float32)
                w = w * g.reshape(-1, 1, 1, 1)
                b = b * g + nxt["beta"].reshape(-1).astype(np.float32)
                i += 1
            inits += [numpy_helper.from_array(w, f"{name}_W"), numpy_helper.from_array(b, f"{name}_B")]
            py, px = layer["padding_y"], layer["padding_x"]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [x, f"{name}_W", f"{name}_B"],
                    [name],
                    name=name,
                    kernel_shape=[layer["nr"], layer["nc"]],
                    strides=[layer["stride_y"], layer["stride_x"]],
                    pads=[py, px, py, px],
                )
            )
        elif layer["type"] == "relu":
            nodes.append(helper.make_node("Relu", [x], [name], name=name))
        elif layer["type"] == "affine" and layer["mode"] == "CONV_MODE":
            k = layer["gamma"].size
            inits += [
                numpy_helper.from_array(layer["gamma"].astype(np.float32).reshape(1, k, 1, 1), f"{name}_g"),
                numpy_helper.from_array(layer["beta"].astype(np.float32).reshape(1, k, 1, 1), f"{name}_b"),
            ]
            nodes.append(helper.make_node("Mul", [x, f"{name}_g"], [f"{name}_mul"], name=f"{name}_mul"))
            nodes.append(helper.make_node("Add", [f"{name}_mul", f"{name}_b"], [name], name=name))
        else:
            raise DlibFormatError(f"layer {layer['type']!r} is not supported in the MMOD graph")
        x = name
        i += 1
    nodes.append(helper.make_node("Identity", [x], ["scores"], name="output"))
    graph = helper.make_graph(
        nodes,
        "dlib_mmod_human_face_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", len(mmod.windows), "h", "w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="facegate")
    model.ir_version = 8
    model.doc_string = (
        "dlib MMOD face detector, convolutions only. input 'image': float32 NCHW tiled pyramid of "
        f"(RGB - ({mmod.avg[0]}, {mmod.avg[1]}, {mmod.avg[2]})) / 256; output 'scores': window scores"
    )
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------
# conversion, cached like the face ResNet's
# --------------------------------------------------------------------------------------


def converted_model(directory: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The ONNX file of dlib's MMOD face detector, converting it on first use, and how it was made."""
    return cached_conversion(
        model_file(SOURCE), lambda source: build_model(load_network(source)).SerializeToString(), directory
    )


# --------------------------------------------------------------------------------------
# dlib's bilinear resize_image, bit for bit
# --------------------------------------------------------------------------------------


def _rows(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = (n_in - 1) / max(n_out - 1, 1)
    y = np.add.accumulate(np.r_[-scale, np.full(n_out, scale)])[1:]  # dlib: y += y_scale, in double
    top = np.floor(y).astype(np.intp)
    return top, np.minimum(top + 1, n_in - 1), y - top


def _columns(n_in: int, n_out: int):
    """dlib's column positions: four float32 SIMD lanes stepped by float32(4 * scale) while
    the right neighbour of the fourth lane is inside the image, then a scalar tail in double."""
    scale = (n_in - 1) / max(n_out - 1, 1)
    x0 = -4 * scale
    groups = n_out // 4 + 2
    seq = np.empty((groups + 1, 4), dtype=np.float32)
    seq[0] = [x0, x0 + scale, x0 + 2 * scale, x0 + 3 * scale]
    seq[1:] = np.float32(4 * scale)
    xs = np.add.accumulate(seq, axis=0, dtype=np.float32)[1:]
    left = xs.astype(np.int32)  # truncation, as _mm_cvttps_epi32
    outside = left[:, 3] + 1 >= n_in
    stop = int(np.argmax(outside)) if outside.any() else groups
    n_simd = min(4 * stop, n_out)
    xs, left = xs[:stop].reshape(-1)[:n_simd], left[:stop].reshape(-1)[:n_simd]
    frac = xs - left.astype(np.float32)
    x = np.add.accumulate(np.r_[-scale + n_simd * scale, np.full(n_out - n_simd, scale)])[1:]
    tail_left = np.floor(x).astype(np.intp)
    simd = (left.astype(np.intp), frac, np.float32(1) - frac)
    return simd, (tail_left, np.minimum(tail_left + 1, n_in - 1), x - tail_left)


def resize_bilinear(src: np.ndarray, out_h: int, out_w: int, rgb8: bool = False) -> np.ndarray:
    """dlib's ``resize_image(in, out)`` (bilinear) of each channel of ``src`` (C, H, W).

    ``rgb8``: ``src`` holds uint8 RGB values and the result is truncated to uint8 as
    dlib's rgb_pixel overload does; otherwise float32 in, float32 out (dlib's float
    image overload, which the tensor pyramid uses).
    """
    src = np.asarray(src, dtype=np.float32)
    channels, h, w = src.shape
    top, bottom, tb = _rows(h, out_h)
    (left, lr, inv_lr), (t_left, t_right, t_lr) = _columns(w, out_w)
    n = left.size
    out = np.empty((channels, out_h, out_w), np.float32)
    tbf, itbf = tb.astype(np.float32)[:, None], (1 - tb).astype(np.float32)[:, None]
    lefts, rights = src[:, :, left], src[:, :, left + 1]  # gather the columns once, then the rows
    v = (itbf * inv_lr) * lefts[:, top]  # float32 throughout, summed in dlib's order
    v += (itbf * lr) * rights[:, top]
    v += (tbf * inv_lr) * lefts[:, bottom]
    v += (tbf * lr) * rights[:, bottom]
    out[:, :, :n] = v
    if n < out_w:  # the scalar tail: rgb in double, float images in float with a double row weight
        tb64 = tb[:, None]
        lefts, rights = src[:, :, t_left], src[:, :, t_right]
        if rgb8:
            lefts, rights, f = lefts.astype(np.float64), rights.astype(np.float64), t_lr
        else:
            f = t_lr.astype(np.float32)
        v = (1 - tb64) * ((1 - f) * lefts[:, top] + f * rights[:, top])
        v = v + tb64 * ((1 - f) * lefts[:, bottom] + f * rights[:, bottom])
        out[:, :, n:] = np.trunc(v) if rgb8 else v
    if rgb8:
        return np.trunc(out).astype(np.uint8)
    return out


def pyramid_up(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up(img, pyramid_down<2>)`` of an RGB uint8 image: (2H+1, 2W+2), bilinear."""
    h, w = image.shape[:2]
    # rect_up of the image rectangle: corners (p + (1.25, 0.75)) * 2, rounded
    out_w = math.floor((w - 1 + 1.25) * 2 + 0.5) + 1
    out_h = math.floor((h - 1 + 0.75) * 2 + 0.5) + 1
    up = resize_bilinear(image.transpose(2, 0, 1), out_h, out_w, rgb8=True)
    return np.ascontiguousarray(up.transpose(1, 2, 0))


# --------------------------------------------------------------------------------------
# the tiled pyramid (input_rgb_image_pyramid)
# --------------------------------------------------------------------------------------


def pyramid_tiles(nr: int, nc: int, padding: int = 10, outer_padding: int = 11, n: int = PYRAMID_DOWN):
    """dlib's ``compute_tiled_image_pyramid_details``: the tiles (left, top, right, bottom)
    of each pyramid level, largest first, and the tiled image's rows and columns."""
    if nr * nc == 0:
        return [], 0, 0
    rate = (n - 1.0) / n
    sizes = [(nr, nc)]
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < 5:
            break
        sizes.append((nr, nc))
    h0, w0 = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height = prev_width = 0
    for h, w in sizes:
        # the first column goes on until the next tile fits beside the previous one
        if w <= w0 - prev_width - padding and (height - h0) * 2 >= total_height - h0:
            break
        height += h + padding
        prev_width = w
    height -= padding
    rects: list[tuple[int, int, int, int]] = []
    y = outer_padding
    while y < height + outer_padding and len(rects) < len(sizes):
        h, w = sizes[len(rects)]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
    y -= padding
    first = rects[0]
    while len(rects) < len(sizes):  # the second column, bottom up, right-aligned
        h, w = sizes[len(rects)]
        right, bottom = outer_padding + w0 - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        if max(first[0], rect[0]) <= min(first[2], rect[2]) and max(first[1], rect[1]) <= min(first[3], rect[3]):
            break  # it would overlap the original image
        rects.append(rect)
        y -= h + padding
    return rects, height + 2 * outer_padding, w0 + 2 * outer_padding


def tiled_pyramid(image: np.ndarray, net: MmodNet) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The input tensor (1, 3, NR, NC) float32 of ``input_rgb_image_pyramid`` and its tiles."""
    nr, nc = image.shape[:2]
    rects, NR, NC = pyramid_tiles(nr, nc, net.padding, net.outer_padding)
    data = np.zeros((1, 3, NR, NC), np.float32)
    if not rects:
        return data, rects
    avg = np.array(net.avg, dtype=np.float32).reshape(3, 1, 1)
    tiles = [data[0, :, top : bottom + 1, left : right + 1] for left, top, right, bottom in rects]
    tiles[0][...] = (image.transpose(2, 0, 1).astype(np.float32) - avg) / np.float32(256)
    for previous, tile in itertools.pairwise(tiles):  # each level resized from the one before
        tile[...] = resize_bilinear(previous, *tile.shape[1:])
    return data, rects


# --------------------------------------------------------------------------------------
# scores -> detections (loss_mmod_::to_label)
# --------------------------------------------------------------------------------------


def _round_point(v: np.ndarray) -> np.ndarray:
    """dlib's ``dpoint`` to ``point`` rounding: floor(v + 0.5)."""
    return np.floor(np.asarray(v, dtype=np.float64) + 0.5).astype(np.int64)


def _round_box(v: np.ndarray) -> np.ndarray:
    """dlib's ``drectangle`` to ``rectangle`` rounding as the dlib build measures it: halves
    away from zero (a left edge at -4.5 becomes -5, at 3.5 becomes 4)."""
    v = np.asarray(v, dtype=np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def _nearest_tiles(rects: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's ``nearest_rect`` for each point: the first tile holding it, else the nearest (first on ties)."""
    left, top, right, bottom = (rects[:, i][None, :] for i in range(4))
    px, py = x[:, None], y[:, None]
    inside = (px >= left) & (px <= right) & (py >= top) & (py <= bottom)
    dx = np.where(px < left, left - px, np.where(px > right, px - right, 0))
    dy = np.where(py < top, top - py, np.where(py > bottom, py - bottom, 0))
    nearest = np.argmin(dx * dx + dy * dy, axis=1)
    return np.where(inside.any(axis=1), np.argmax(inside, axis=1), nearest)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap`` on two inclusive rectangles."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return False
    inner = float(iw * ih)
    outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / outer > iou or inner / area_a > covered or inner / area_b > covered


def windows_from_scores(
    scores: np.ndarray,
    rects: list[tuple[int, int, int, int]],
    net: MmodNet,
    adjust_threshold: float = 0.0,
) -> list[MmodDetection]:
    """``loss_mmod_::tensor_to_dets``: every window of one image's score map (windows, h, w)
    scoring above ``adjust_threshold``, as a box in the image that went into the pyramid,
    best first (before non-max suppression)."""
    scores = np.asarray(scores)
    k, r, c = np.nonzero(scores > adjust_threshold)
    if k.size == 0 or not rects:
        return []
    score = scores[k, r, c].astype(np.float64)
    px, py = net.output_to_input(c, r)
    win = np.array(net.windows, dtype=np.float64)[k]
    half_w, half_h = (win[:, 0] - 1) / 2, (win[:, 1] - 1) / 2  # centered_drect
    left, top, right, bottom = px - half_w, py - half_h, px + half_w, py + half_h
    # tiled_pyramid_to_image: the tile nearest the box centre, then pyramid_down<6>::rect_up
    tiles = np.array(rects, dtype=np.int64)
    level = _nearest_tiles(tiles, _round_point((left + right) / 2), _round_point((top + bottom) / 2))
    left, right = left - tiles[level, 0], right - tiles[level, 0]
    top, bottom = top - tiles[level, 1], bottom - tiles[level, 1]
    ratio = PYRAMID_DOWN / (PYRAMID_DOWN - 1.0)
    for step in range(1, int(level.max()) + 1):  # point_up, once per level: p * N/(N-1) + 0.3
        up = level >= step
        left, top, right, bottom = (np.where(up, v * ratio + 0.3, v) for v in (left, top, right, bottom))
    boxes = np.stack([_round_box(left), _round_box(top), _round_box(right), _round_box(bottom)], axis=1)
    order = np.argsort(-score, kind="stable")
    return [MmodDetection(*(int(v) for v in boxes[i]), float(score[i])) for i in order]


def non_max_suppression(windows: list[MmodDetection], net: MmodNet) -> list[MmodDetection]:
    """dlib's greedy NMS: each window, best first, unless it overlaps one already kept."""
    kept: list[MmodDetection] = []
    for window in windows:
        if not any(_overlaps(d[:4], window[:4], net.nms_iou, net.nms_covered) for d in kept):
            kept.append(window)
    return kept


def detections_from_scores(
    scores: np.ndarray,
    rects: list[tuple[int, int, int, int]],
    net: MmodNet,
    adjust_threshold: float = 0.0,
) -> list[MmodDetection]:
    """``loss_mmod_::to_label`` on one image's score map: the detections, best first."""
    return non_max_suppression(windows_from_scores(scores, rects, net, adjust_threshold), net)


def rect_down(detection: MmodDetection, levels: int) -> MmodDetection:
    """``pyramid_down<2>::rect_down(rect, levels)``: a box in the upsampled image, in the original."""
    if levels <= 0:
        return detection
    left, top, right, bottom = (float(v) for v in detection[:4])
    for _ in range(levels):
        left, right = left / 2.0 - 1.25, right / 2.0 - 1.25
        top, bottom = top / 2.0 - 0.75, bottom / 2.0 - 0.75
    box = (int(v) for v in _round_box(np.array([left, top, right, bottom])))
    return MmodDetection(*box, detection.confidence)


# --------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"the MMOD detector needs a uint8 image, got {image.dtype}")
    if image.ndim == 2:  # dlib copies a grey image into all three channels
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"the MMOD detector needs an RGB (H, W, 3) or grey (H, W) image, got {image.shape}")
    return image


class MmodOnnxDetector:
    """dlib's ``cnn_face_detection_model_v1`` with its convolutions on ONNX Runtime (CPU).

    Called like dlib's: ``detector(image, upsample)`` returns :class:`MmodDetection`
    boxes in ``image`` pixels, best first.
    """

    def __init__(self, threads: int | None = None, cache_dir: str | Path | None = None) -> None:
        self.threads = onnx_threads(threads)
        self.path, self.conversion = converted_model(cache_dir)
        self.net = load_net()
        self._session = OnnxSession(self.path, self.threads)

    def score_map(self, image: np.ndarray, upsample: int = 0):
        """The window scores (windows, h, w) of ``image`` upsampled ``upsample`` times, and the pyramid tiles."""
        image = _as_rgb(image)
        for _ in range(max(0, upsample)):
            image = pyramid_up(image)
        data, rects = tiled_pyramid(image, self.net)
        h, w = self.net.output_size(data.shape[2], data.shape[3])
        if not rects or h < 1 or w < 1:
            return np.zeros((len(self.net.windows), max(h, 0), max(w, 0)), np.float32), rects
        return self._session.get().run(["scores"], {"image": data})[0][0], rects

    def __call__(self, image: np.ndarray, upsample: int = 0, adjust_threshold: float = 0.0) -> list[MmodDetection]:
        scores, rects = self.score_map(image, upsample)
        found = detections_from_scores(scores, rects, self.net, adjust_threshold)
        return [rect_down(d, upsample) for d in found]

    def windows(self, image: np.ndarray, upsample: int = 0, adjust_threshold: float = 0.0) -> list[MmodDetection]:
        """Every window above ``adjust_threshold`` before non-max suppression, in ``image`` pixels, best first."""
        scores, rects = self.score_map(image, upsample)
        return [rect_down(d, upsample) for d in windows_from_scores(scores, rects, self.net, adjust_threshold)]

    def describe(self) -> dict[str, Any]:
        return {"engine": "onnx", "threads": self.threads, "model": str(self.path), **self.conversion}
