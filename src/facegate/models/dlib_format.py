"""A reader for dlib's binary serialization of its DNNs, in numpy: no dlib needed.

It reads ``dlib_face_recognition_resnet_model_v1.dat`` and ``mmod_human_face_detector.dat``
(both shipped by the ``face_recognition_models`` package) into their layers, in forward
order, so the same networks can run on an optimised runtime
(:mod:`facegate.models.onnx_export`, :mod:`facegate.detection.mmod_onnx`). For the MMOD
detector that includes its loss layer's options (detector windows, thresholds, the
non-max-suppression overlap tester) and its input layer's pyramid settings; its
batch-norm layers are stored as ``bn_con2`` and are converted to ``affine`` on reading,
as dlib's ``affine_`` deserializer does.

The format, as dlib's ``serialize.h`` and ``dnn/*.h`` write it:

- an integer is a control byte (bit 7: negative; low 4 bits: byte count) and then
  its magnitude in that many little-endian bytes; a string is an integer length and
  its bytes; a bool is the character ``'1'`` or ``'0'``;
- a float is a "float_details": an int64 mantissa then an int16 exponent, each an
  integer as above (value = mantissa x 2**exponent);
- a tensor is a version, then num_samples, k, nr, nc, then its values (version 2:
  raw little-endian float32; version 1: floats as above);
- a network writes every wrapper's version from the loss layer inwards, then the
  input layer, then each layer's details in forward order. Tags and skips are
  written alike and tag numbers are not written: :func:`resolve_tag_ids` recovers
  them from the structure of dlib's ResNet blocks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facegate.errors import ModelUnavailableError


class DlibFormatError(ModelUnavailableError):
    """The file is not a dlib network this reader understands."""


# --------------------------------------------------------------------------------------
# primitives
# --------------------------------------------------------------------------------------


class Reader:
    def __init__(self, data: bytes):
        self.buf = memoryview(data)
        self.pos = 0

    def remaining(self):
        return len(self.buf) - self.pos

    def _take(self, n):
        if self.pos + n > len(self.buf):
            raise DlibFormatError(f"unexpected end of data at {self.pos} (wanted {n} bytes)")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    # dlib integer: control byte (bit7 = negative, low 4 bits = byte count),
    # then |value| in little-endian with that many bytes.  Zero is a single 0x00 byte.
    def int(self):
        ctrl = self._take(1)[0]
        n = ctrl & 0x0F
        if n > 8:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at {self.pos - 1}")
        v = int.from_bytes(bytes(self._take(n)), "little") if n else 0
        return -v if ctrl & 0x80 else v

    # char / unsigned char (uint8_t): one raw byte
    def byte(self):
        return self._take(1)[0]

    # bool: one ASCII byte '1' or '0'
    def bool(self):
        c = self._take(1)[0]
        if c == ord("1"):
            return True
        if c == ord("0"):
            return False
        raise DlibFormatError(f"bad bool byte 0x{c:02x} at {self.pos - 1}")

    # std::string (and C string literals, which dlib serializes the same way):
    # dlib integer length, then the raw bytes (no terminator)
    def string(self):
        n = self.int()
        if n < 0 or n > self.remaining():
            raise DlibFormatError(f"bad string length {n} at {self.pos}")
        return bytes(self._take(n)).decode("latin-1")

    def peek_string(self):
        p = self.pos
        try:
            return self.string()
        except DlibFormatError:
            return None
        finally:
            self.pos = p

    # float/double: float_details = (int64 mantissa, int16 exponent), each as a dlib
    # integer, mantissa FIRST (the header comment in serialize.h says exponent first,
    # the code writes mantissa first).  value = mantissa * 2**exponent, with exponent
    # 32000/32001/32002 meaning +inf/-inf/nan.
    def float_details(self):
        first = self.buf[self.pos] if self.pos < len(self.buf) else 0
        if first & 0x70:
            raise DlibFormatError(f"old ASCII float format at {self.pos} not supported")
        m = self.int()
        e = self.int()
        return m, e

    def double(self):
        m, e = self.float_details()
        if e == 32000:
            return float("inf")
        if e == 32001:
            return float("-inf")
        if e == 32002:
            return float("nan")
        return math.ldexp(float(m), e)  # exact: python floats are doubles

    def float32(self):
        # dlib deserializes into a float with ldexpf((float)mantissa, exponent)
        m, e = self.float_details()
        if e >= 32000:
            return np.float32(self.double_from(m, e))
        return np.float32(np.ldexp(np.float32(m), e))

    @staticmethod
    def double_from(m, e):
        return {32000: float("inf"), 32001: float("-inf")}.get(e, float("nan"))

    # resizable_tensor / tensor:
    #   int version; long num_samples, k, nr, nc; then num_samples*k*nr*nc values.
    #   version 1: each value is a dlib float (float_details)
    #   version 2: each value is a raw 4-byte little-endian IEEE float
    def tensor(self):
        ver = self.int()
        n, k, nr, nc = self.int(), self.int(), self.int(), self.int()
        size = n * k * nr * nc
        if ver == 2:
            raw = self._take(4 * size)
            arr = np.frombuffer(bytes(raw), dtype="<f4").astype(np.float32)
        elif ver == 1:
            arr = np.array([self.float32() for _ in range(size)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown tensor version {ver} at {self.pos}")
        return arr.reshape(n, k, nr, nc)

    # alias_tensor: int version(1); long num_samples, k, nr, nc (no data)
    def alias_tensor(self):
        ver = self.int()
        if ver != 1:
            raise DlibFormatError(f"unknown alias_tensor version {ver}")
        return (self.int(), self.int(), self.int(), self.int())


# --------------------------------------------------------------------------------------
# layer "details" objects
# --------------------------------------------------------------------------------------


def _read_loss(r: Reader):
    ver = r.string()
    if ver == "loss_metric_2":
        return {"type": "loss_metric", "version": ver, "margin": r.float32(), "dist_thresh": r.float32()}
    if ver == "loss_metric_":
        return {"type": "loss_metric", "version": ver, "margin": 0.1, "dist_thresh": 0.75}
    if ver == "loss_mmod_":
        return {"type": "loss_mmod", "version": ver, **_read_mmod_options(r)}
    raise DlibFormatError(f"unsupported loss layer {ver!r}")


def _read_overlap_tester(r: Reader) -> dict:
    # test_box_overlap: double iou_thresh, double percent_covered_thresh (dlib's "iou" divides the
    # intersection by the area of the two boxes' bounding box, not of their union)
    return {"iou_thresh": r.double(), "percent_covered_thresh": r.double()}


def _read_mmod_options(r: Reader) -> dict:
    """dlib's ``mmod_options`` (versions 1 to 4), as ``loss_mmod_`` writes them after its name.

    version; detector windows (v1: one width and height; v2+: a vector of
    {version 1|2, width, height, [v2: label]}); loss_per_false_alarm, loss_per_missed_target,
    truth_match_iou_threshold (doubles); overlaps_nms, overlaps_ignore (test_box_overlap);
    v3+: assume_image_pyramid (a raw uint8 byte, 1 = yes); v4+: use_bounding_box_regression (bool),
    bbr_lambda (double).
    """
    version = r.int()
    if not 1 <= version <= 4:
        raise DlibFormatError(f"unknown mmod_options version {version}")
    if version == 1:
        windows = [{"width": r.int(), "height": r.int(), "label": ""}]
    else:
        windows = []
        for _ in range(r.int()):
            wv = r.int()
            if wv not in (1, 2):
                raise DlibFormatError(f"unknown detector_window_details version {wv}")
            window = {"width": r.int(), "height": r.int()}
            window["label"] = r.string() if wv == 2 else ""
            windows.append(window)
    options = {"options_version": version, "detector_windows": windows}
    _fields(options, r.double, "loss_per_false_alarm", "loss_per_missed_target", "truth_match_iou_threshold")
    options["overlaps_nms"] = _read_overlap_tester(r)
    options["overlaps_ignore"] = _read_overlap_tester(r)
    options["assume_image_pyramid"] = bool(r.byte()) if version >= 3 else True
    options["use_bounding_box_regression"] = r.bool() if version >= 4 else False
    options["bbr_lambda"] = r.double() if version >= 4 else 100.0
    return options


def _read_input(r: Reader):
    ver = r.string()
    if ver == "input_rgb_image_sized":
        d = {
            "type": "input_rgb_image_sized",
            "version": ver,
            "avg_red": r.float32(),
            "avg_green": r.float32(),
            "avg_blue": r.float32(),
        }
        d["nr"] = r.int()
        d["nc"] = r.int()
        return d
    if ver == "input_rgb_image":
        return {
            "type": "input_rgb_image",
            "version": ver,
            "avg_red": r.float32(),
            "avg_green": r.float32(),
            "avg_blue": r.float32(),
        }
    if ver in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"):
        # the pyramid type (pyramid_down<N>) is a template parameter: not in the file
        d = {"type": "input_rgb_image_pyramid", "version": ver}
        _fields(d, r.float32, "avg_red", "avg_green", "avg_blue")
        if ver == "input_rgb_image_pyramid2":
            _fields(d, r.int, "pyramid_padding", "pyramid_outer_padding")
        else:  # dlib's defaults for the files written before the padding was saved
            d["pyramid_padding"], d["pyramid_outer_padding"] = 10, 11
        return d
    raise DlibFormatError(f"unsupported input layer {ver!r}")


#: the learning-rate and weight-decay multipliers every trainable layer writes (unused here)
MULTIPLIERS = (
    "learning_rate_multiplier",
    "weight_decay_multiplier",
    "bias_learning_rate_multiplier",
    "bias_weight_decay_multiplier",
)


def _fields(layer: dict, read, *names: str) -> None:
    """Read ``names`` in order with ``read`` into ``layer``."""
    for name in names:
        layer[name] = read()


def _read_details(r: Reader):
    start = r.pos
    ver = r.string()
    if ver == "con_4":
        params = r.tensor()
        d = {"type": "con", "version": ver}
        _fields(d, r.int, "num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        _fields(d, r.alias_tensor, "filters_shape", "biases_shape")
        _fields(d, r.double, *MULTIPLIERS)
        p = params.reshape(-1)
        fs = d["filters_shape"]
        nf = int(np.prod(fs))
        d["weight"] = p[:nf].reshape(fs)  # (out, in, kh, kw)
        d["bias"] = p[nf : nf + int(np.prod(d["biases_shape"]))].reshape(-1)
        if nf + d["bias"].size != p.size:
            raise DlibFormatError("con_ params size mismatch")
        return d
    if ver == "affine_":
        params = r.tensor()
        g = r.alias_tensor()
        b = r.alias_tensor()
        mode = r.int()  # layer_mode: CONV_MODE=0, FC_MODE=1
        p = params.reshape(-1)
        ng = int(np.prod(g))
        return {
            "type": "affine",
            "version": ver,
            "gamma_shape": g,
            "beta_shape": b,
            "mode": "CONV_MODE" if mode == 0 else "FC_MODE",
            "gamma": p[:ng].reshape(g),
            "beta": p[ng : ng + int(np.prod(b))].reshape(b),
        }
    if ver in ("bn_con2", "bn_fc2"):
        return _read_batch_norm(r, ver)
    if ver == "relu_":
        return {"type": "relu", "version": ver}
    if ver in ("max_pool_2", "avg_pool_2"):
        d = {"type": "max_pool" if ver.startswith("max") else "avg_pool", "version": ver}
        _fields(d, r.int, "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return d
    if ver == "add_prev_":
        return {"type": "add_prev", "version": ver}
    if ver in ("fc_2", "fc_3"):
        d = {"type": "fc", "version": ver}
        d["num_outputs"] = r.int()
        d["num_inputs"] = r.int()
        params = r.tensor()
        d["weights_shape"] = r.alias_tensor()
        d["biases_shape"] = r.alias_tensor()
        d["bias_mode"] = "FC_HAS_BIAS" if r.int() == 0 else "FC_NO_BIAS"
        _fields(d, r.double, *MULTIPLIERS)
        if ver == "fc_3":
            d["use_bias"] = r.bool()
        p = params.reshape(-1)
        nw = int(np.prod(d["weights_shape"]))
        # output = input (N x num_inputs) * W (num_inputs x num_outputs)
        d["weight"] = p[:nw].reshape(d["num_inputs"], d["num_outputs"])
        if d["bias_mode"] == "FC_HAS_BIAS":
            d["bias"] = p[nw : nw + d["num_outputs"]]
        return d
    r.pos = start
    raise DlibFormatError(f"unsupported layer details {ver!r} at {start}")


def _read_batch_norm(r: Reader, ver: str) -> dict:
    """A ``bn_`` layer, returned as the ``affine`` layer dlib turns it into for inference.

    bn_: params (gamma then beta), gamma and beta (alias tensors), means, invstds,
    running_means, running_variances (tensors), num_updates, running_stats_window_size,
    the four multipliers and eps (doubles). dlib's ``affine_(const bn_&)`` makes
    gamma' = gamma / sqrt(running_variance + eps) and beta' = beta - gamma' * running_mean,
    in float32, as here.
    """
    params = r.tensor().reshape(-1)
    g, b = r.alias_tensor(), r.alias_tensor()
    stats = {name: r.tensor().reshape(-1) for name in ("means", "invstds", "running_means", "running_variances")}
    _fields(stats, r.int, "num_updates", "running_stats_window_size")
    _fields(stats, r.double, *MULTIPLIERS, "eps")
    ng, nb = int(np.prod(g)), int(np.prod(b))
    if ng + nb != params.size or stats["running_means"].size != ng or stats["running_variances"].size != ng:
        raise DlibFormatError(f"{ver} params size mismatch")
    gamma, beta = params[:ng], params[ng : ng + nb]
    eps = np.float32(stats["eps"])
    scale = (gamma / np.sqrt(stats["running_variances"] + eps)).astype(np.float32)
    shift = (beta - scale * stats["running_means"]).astype(np.float32)
    return {
        "type": "affine",
        "version": ver,
        "gamma_shape": g,
        "beta_shape": b,
        "mode": "CONV_MODE" if ver == "bn_con2" else "FC_MODE",
        "gamma": scale.reshape(g),
        "beta": shift.reshape(b),
        "batch_norm": {"gamma": gamma.reshape(g), "beta": beta.reshape(b), **stats},
    }


# --------------------------------------------------------------------------------------
# network structure
# --------------------------------------------------------------------------------------
#
# add_loss_layer:  int version(1); loss details; subnetwork
# add_layer (over another layer):  int version(2); subnetwork; details;
#       bool this_layer_setup_called; bool gradient_input_is_stale;
#       bool get_output_and_gradient_input_disabled; tensor x_grad; tensor cached_output;
#       tensor params_grad
# add_layer (over the input layer): int version(2 or 3); input layer; details;
#       3 bools; tensor x_grad; tensor cached_output; tensor grad_final;
#       [version 3: unsigned _sample_expansion_factor]
# add_tag_layer / add_skip_layer: int version(1); subnetwork      (nothing else!)
#
# So the file starts with the outermost wrappers' version numbers, nested all the way
# down to the input layer, and the layer details come back out in FORWARD order.
# Tag ids (tag1/tag2...) and add_prev/skip tag numbers are template parameters and are
# NOT serialized; tags and skips are byte-identical (just "int 1").


def _is_input_next(r: Reader):
    s = r.peek_string()
    return s is not None and s.startswith("input")


def load_network(path_or_bytes, resolve_tags=True):
    """The network in a dlib ``.dat`` file: ``{"loss": ..., "layers": [...]}``, input layer first."""
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()
    r = Reader(data)
    loss_ver = r.int()
    if loss_ver != 1:
        raise DlibFormatError(f"unexpected add_loss_layer version {loss_ver}")
    loss = _read_loss(r)

    # descend: collect wrappers outermost -> innermost
    stack = []
    while True:
        v = r.int()
        if _is_input_next(r):
            stack.append(("input_add_layer", v))
            break
        if v == 2:
            stack.append(("add_layer", v))
        elif v == 1:
            stack.append(("wrapper", v))  # tag or skip: indistinguishable in the bytes
        else:
            raise DlibFormatError(f"unexpected layer version {v} at {r.pos}")

    layers = []
    kind, v = stack.pop()
    inp = _read_input(r)
    inp["_offset"] = r.pos
    layers.append(inp)
    det = _read_details(r)
    st = {"setup_called": r.bool(), "grad_stale": r.bool(), "getters_disabled": r.bool()}
    for _ in range(3):  # x_grad, cached_output, grad_final: training state, empty in a saved net
        r.tensor()
    if v >= 3:
        st["sample_expansion_factor"] = r.int()
    det["state"] = st
    layers.append(det)

    while stack:
        kind, v = stack.pop()
        if kind == "wrapper":
            layers.append({"type": "wrapper", "version": v})
            continue
        off = r.pos
        det = _read_details(r)
        det["_offset"] = off
        det["state"] = {"setup_called": r.bool(), "grad_stale": r.bool(), "getters_disabled": r.bool()}
        for _ in range(3):  # x_grad, cached_output, params_grad: training state, empty in a saved net
            r.tensor()
        layers.append(det)

    if r.remaining() != 0:
        raise DlibFormatError(f"{r.remaining()} trailing bytes not consumed")
    net = {"loss": loss, "layers": layers, "bytes": len(data), "consumed": r.pos}
    if resolve_tags:
        resolve_tag_ids(layers)
    return net


def resolve_tag_ids(layers):
    """Give every 'wrapper' a role (tag / skip) and every add_prev its tag id.

    The ids are not in the file.  This uses the structure of the dlib ResNet
    templates (dnn_face_recognition_ex.cpp / dnn_imagenet_ex.cpp):
        residual      = add_prev1< block< tag1<x> > >
        residual_down = add_prev2< avg_pool< skip1< tag2< block< tag1<x> > > > > >
    In forward order: a lone wrapper is tag1; two consecutive wrappers are
    tag2 followed by skip1; an add_prev adds tag2 if a skip occurred since the most
    recent tag1, otherwise tag1.
    """
    i = 0
    skip_seen = False
    while i < len(layers):
        L = layers[i]
        if L["type"] == "wrapper":
            if i + 1 < len(layers) and layers[i + 1]["type"] == "wrapper":
                L["type"], L["tag"] = "tag", 2
                layers[i + 1]["type"], layers[i + 1]["tag"] = "skip", 1
                skip_seen = True
                i += 2
                continue
            L["type"], L["tag"] = "tag", 1
            skip_seen = False
        elif L["type"] == "add_prev":
            L["tag"] = 2 if skip_seen else 1
            skip_seen = False
        i += 1
    return layers
