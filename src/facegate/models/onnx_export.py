"""dlib's face ResNet as an ONNX graph, built from its ``.dat`` file with the ``onnx`` package.

Input ``image``: float32 [N, 3, 150, 150], RGB, raw 0..255 pixel values; the graph
applies dlib's input layer, ``(pixel - channel mean) / 256``. Output ``descriptor``:
float32 [N, 128], dlib's raw descriptor (not yet unit length).

Each batch-norm (``affine``) layer is folded into the convolution before it. dlib's
residual add pads the smaller of its two inputs with zeros at the end (extra
channels, bottom rows, right columns) when the shortcut and the block differ in
size, which the downsampling blocks do; the graph does the same with ``Pad``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class _Builder:
    def __init__(self):
        self.nodes, self.inits = [], []
        self.n = 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, arr, base):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
        return nm

    def node(self, op, inputs, base=None, **attrs):
        out = self.name(base or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _pad_to(b: _Builder, value: str, shape: list[int], target: list[int]) -> str:
    """``value`` zero-padded at the end of each axis up to ``target`` (dlib's add_prev)."""
    if shape == target:
        return value
    d = [t - s for t, s in zip(target, shape, strict=True)]
    pads = np.array([0, 0, 0, 0, 0, d[0], d[1], d[2]], dtype=np.int64)
    return b.node("Pad", [value, b.const(pads, "pads")], "zero_pad_end", mode="constant")


def _conv_out(n, k, s, p):
    return 1 + (n + 2 * p - k) // s


def build_model(net, fold_affine=True, preprocess=True, opset=OPSET) -> onnx.ModelProto:
    """The ONNX graph of a network read by :func:`facegate.models.dlib_format.load_network`."""
    layers = net["layers"]
    inp = layers[0]
    H, W = inp.get("nr", 150), inp.get("nc", 150)
    b = _Builder()
    x = "image"
    shape = [3, H, W]  # C,H,W tracked statically (batch is dynamic)
    if preprocess:
        avg = np.array([inp["avg_red"], inp["avg_green"], inp["avg_blue"]], dtype=np.float32).reshape(1, 3, 1, 1)
        x = b.node("Sub", [x, b.const(avg, "input_mean")], "sub_mean")
        x = b.node("Div", [x, b.const(np.array(256.0, dtype=np.float32), "input_scale")], "div_256")

    tags = {}
    i = 1
    while i < len(layers):
        L = layers[i]
        t = L["type"]
        if t == "con":
            w = L["weight"].astype(np.float32)
            bias = L["bias"].astype(np.float32)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            fused = fold_affine and nxt is not None and nxt["type"] == "affine" and nxt["mode"] == "CONV_MODE"
            if fused:
                g = nxt["gamma"].reshape(-1).astype(np.float32)
                be = nxt["beta"].reshape(-1).astype(np.float32)
                w = w * g.reshape(-1, 1, 1, 1)
                bias = bias * g + be
            py, px = L["padding_y"], L["padding_x"]
            x = b.node(
                "Conv",
                [x, b.const(w, "W"), b.const(bias, "B")],
                "conv",
                kernel_shape=[L["nr"], L["nc"]],
                strides=[L["stride_y"], L["stride_x"]],
                pads=[py, px, py, px],
            )
            shape = [
                L["num_filters"],
                _conv_out(shape[1], L["nr"], L["stride_y"], py),
                _conv_out(shape[2], L["nc"], L["stride_x"], px),
            ]
            if fused:
                i += 1
        elif t == "affine":
            k = shape[0]
            g = (
                L["gamma"].astype(np.float32).reshape(1, k, 1, 1)
                if L["mode"] == "CONV_MODE"
                else L["gamma"].astype(np.float32).reshape([1, *shape])
            )
            be = L["beta"].astype(np.float32).reshape(g.shape)
            x = b.node("Mul", [x, b.const(g, "gamma")], "affine_mul")
            x = b.node("Add", [x, b.const(be, "beta")], "affine_add")
        elif t == "relu":
            x = b.node("Relu", [x], "relu")
        elif t in ("max_pool", "avg_pool"):
            kh, kw = L["nr"], L["nc"]
            py, px = L["padding_y"], L["padding_x"]
            if kh == 0 and kw == 0 and py == 0 and px == 0:
                op = "GlobalMaxPool" if t == "max_pool" else "GlobalAveragePool"
                x = b.node(op, [x], t)
                shape = [shape[0], 1, 1]
            else:
                kh = kh or shape[1] + 2 * py
                kw = kw or shape[2] + 2 * px
                if t == "avg_pool" and (py or px):
                    raise NotImplementedError("padded avg pool")
                op = "MaxPool" if t == "max_pool" else "AveragePool"
                x = b.node(
                    op, [x], t, kernel_shape=[kh, kw], strides=[L["stride_y"], L["stride_x"]], pads=[py, px, py, px]
                )
                shape = [
                    shape[0],
                    _conv_out(shape[1], kh, L["stride_y"], py),
                    _conv_out(shape[2], kw, L["stride_x"], px),
                ]
        elif t == "tag":
            tags[L["tag"]] = (x, list(shape))
        elif t == "skip":
            x, shape = tags[L["tag"]][0], list(tags[L["tag"]][1])
        elif t == "add_prev":
            y, yshape = tags[L["tag"]]
            out_shape = [max(a, c) for a, c in zip(shape, yshape, strict=True)]
            x = b.node("Add", [_pad_to(b, x, shape, out_shape), _pad_to(b, y, yshape, out_shape)], "add_prev")
            shape = out_shape
        elif t == "fc":
            x = b.node("Flatten", [x], "flatten", axis=1)
            x = b.node("MatMul", [x, b.const(L["weight"].astype(np.float32), "fc_W")], "fc")
            if L["bias_mode"] == "FC_HAS_BIAS":
                x = b.node("Add", [x, b.const(L["bias"].astype(np.float32), "fc_B")], "fc_bias")
            shape = [L["num_outputs"]]
        else:
            raise NotImplementedError(t)
        i += 1

    b.nodes.append(helper.make_node("Identity", [x], ["descriptor"], name="output"))
    graph = helper.make_graph(
        b.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, H, W])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", *shape])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="facegate")
    model.ir_version = 8
    doc = (
        "input 'image': float32 NCHW RGB "
        + (
            "raw 0..255 pixel values (preprocessing in graph)"
            if preprocess
            else "already preprocessed: (pixel - avg)/256"
        )
        + f"; avg=({inp['avg_red']}, {inp['avg_green']}, {inp['avg_blue']})"
    )
    model.doc_string = doc
    onnx.checker.check_model(model)
    return model
