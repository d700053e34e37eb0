"""Loading and saving nn4.small2 weights: the exercise's CSV folder, Keras HDF5, PyTorch.

**CSV folder** (the "Happy House" exercise's ``weights/``, exported from OpenFace's Torch
model; read there by ``fr_utils.load_weights``): one file per tensor, all values of the
tensor on one comma-separated line, in row-major order of these shapes:

==============================  =======================  =================================
file                            shape in the file        PyTorch tensor
==============================  =======================  =================================
``<conv>_w.csv``                ``(out, in, kh, kw)``    ``Conv2d.weight`` as is (Keras
                                                         transposes to ``(kh, kw, in, out)``)
``<conv>_b.csv``                ``(out,)``               ``Conv2d.bias``
``<bn>_w / _b / _m / _v.csv``   ``(channels,)``          ``weight``, ``bias``,
                                                         ``running_mean``, ``running_var``
``dense_w.csv``                 ``(128, 736)``           ``Linear.weight`` as is (Keras
                                                         transposes to ``(736, 128)``)
``dense_b.csv``                 ``(128,)``               ``Linear.bias``
==============================  =======================  =================================

Values are parsed as float64 and rounded once to float32. :func:`export_csv` writes each
float32 with 9 significant digits, which always reads back to the identical float32, so
export -> load is bit-exact.

**Keras HDF5** (``nn4.small2.v1.h5``, ``model.save`` or ``save_weights`` files, and the
Keras 3 ``.weights.h5`` layout): found by layer name; kernels are ``(kh, kw, in, out)``
(whatever the model's ``data_format``), dense kernels ``(in, out)``, batch norm
``gamma, beta, moving_mean, moving_variance``. The exercise names the dense layer
``dense_layer``; ``dense`` is accepted too.

**PyTorch** ``.pt`` / ``.pth``: a ``state_dict`` of :class:`NN4Small2`.

Every loader checks every shape before it changes the model (a failed load leaves the
model as it was). With ``strict=True`` (default) a missing tensor is an error that names
every missing file; ``strict=False`` loads what is there and reports the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegate.errors import ModelUnavailableError
from facegate.learn.nets.nn4small2 import NN4Small2

__all__ = [
    "IncompleteWeightsError",
    "LoadReport",
    "WeightsError",
    "expected_files",
    "export_csv",
    "format_csv_values",
    "load_csv",
    "load_h5",
    "load_weights",
    "parse_csv_values",
]

#: CSV suffix -> attribute of the PyTorch module, per layer kind
_CSV_FIELDS = {
    "conv": (("w", "weight"), ("b", "bias")),
    "bn": (("w", "weight"), ("b", "bias"), ("m", "running_mean"), ("v", "running_var")),
    "dense": (("w", "weight"), ("b", "bias")),
}
#: Keras weight names -> attribute, per layer kind (in Keras' own order)
_KERAS_FIELDS = {
    "conv": (("kernel", "weight"), ("bias", "bias")),
    "bn": (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var")),
    "dense": (("kernel", "weight"), ("bias", "bias")),
}  # fmt: skip
_KERAS_ALIASES = {"dense": ("dense_layer", "dense")}


class WeightsError(ModelUnavailableError):
    """Weights that cannot be loaded: unreadable, misshapen or not finite."""


class IncompleteWeightsError(WeightsError):
    """Some tensors are missing; ``missing`` lists them (CSV file stems or layer names)."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass
class LoadReport:
    """What a load did: tensors set, tensors absent from the source, extra files."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def missing_layers(self) -> list[str]:
        """Layers with at least one tensor missing (so partly at their initial values)."""
        return sorted({_layer_of(stem) for stem in self.missing})


def _layer_of(stem: str) -> str:
    """``conv1_w`` (a CSV stem) or ``conv1/kernel`` (an HDF5 weight) -> ``conv1``."""
    if "/" in stem:
        return stem.split("/", 1)[0]
    head, _, suffix = stem.rpartition("_")
    return head if head and suffix in ("w", "b", "m", "v") else stem


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.BatchNorm2d):
        return "bn"
    return "dense"


def _targets(model: NN4Small2) -> Iterator[tuple[str, str, str, torch.Tensor]]:
    """``(layer, kind, attribute, tensor)`` for every tensor the weight files hold."""
    for layer, module in model.named_layers():
        kind = _kind(module)
        for _, attr in _CSV_FIELDS[kind]:
            yield layer, kind, attr, getattr(module, attr)


def expected_files(model: NN4Small2 | None = None) -> dict[str, tuple[int, ...]]:
    """CSV file stem (``conv1_w``) -> the shape of its tensor, for every tensor."""
    model = model if model is not None else NN4Small2()
    stems: dict[str, tuple[int, ...]] = {}
    for layer, module in model.named_layers():
        for suffix, attr in _CSV_FIELDS[_kind(module)]:
            stems[f"{layer}_{suffix}"] = tuple(getattr(module, attr).shape)
    return stems


# --------------------------------------------------------------------------- CSV


def _parse_csv(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"cannot read weight file {path}: {exc}") from exc
    return parse_csv_values(text, str(path))


def parse_csv_values(text: str, source: str = "the weights") -> np.ndarray:
    """The float32 values of one CSV weight file (commas and/or line breaks between them)."""
    tokens = text.replace("\r", "").replace("\n", ",").split(",")
    try:
        values = np.array([t for t in tokens if t.strip()], dtype=np.float64)
    except ValueError as exc:
        raise WeightsError(f"{source} holds something that is not a number: {exc}") from exc
    if not np.isfinite(values).all():
        raise WeightsError(f"{source} holds NaN or infinite values")
    return values.astype(np.float32)


def format_csv_values(values: np.ndarray) -> str:
    """One line of float32 values, each with 9 significant digits (exact for float32)."""
    return ",".join(f"{v:.9g}" for v in np.asarray(values, dtype=np.float32).ravel().tolist())


def load_csv(model: NN4Small2, folder: str | os.PathLike[str], strict: bool = True) -> LoadReport:
    """Load the exercise's per-layer CSV files from ``folder`` into ``model``.

    ``strict=True`` refuses a folder with any file missing, naming every missing file;
    ``strict=False`` loads the files that are there (each checked against its layer's
    shape) and lists the missing ones in the returned report. Files that match no
    tensor are listed as ``unexpected`` and ignored.
    """
    root = Path(folder)
    if not root.is_dir():
        raise WeightsError(f"no weights folder at {root}")
    expected = expected_files(model)
    present = {p.stem: p for p in root.glob("*.csv") if p.is_file()}
    report = LoadReport(str(root))
    report.missing = [stem for stem in expected if stem not in present]
    report.unexpected = sorted(set(present) - set(expected))
    if strict and report.missing:
        raise IncompleteWeightsError(
            f"the nn4.small2 weights folder {root} is incomplete: {len(report.missing)} of "
            f"{len(expected)} files are missing: " + ", ".join(f"{s}.csv" for s in report.missing),
            report.missing,
        )
    arrays: dict[str, np.ndarray] = {}
    wrong: list[str] = []
    for stem, shape in expected.items():
        if stem not in present:
            continue
        values = _parse_csv(present[stem])
        if values.size != int(np.prod(shape)):
            wrong.append(f"{stem}.csv has {values.size} values, its layer needs {shape}")
            continue
        arrays[stem] = values.reshape(shape)
    if wrong:
        raise WeightsError(f"weight files in {root} do not fit nn4.small2: " + "; ".join(wrong))
    with torch.no_grad():
        for layer, module in model.named_layers():
            for suffix, attr in _CSV_FIELDS[_kind(module)]:
                stem = f"{layer}_{suffix}"
                if stem in arrays:
                    getattr(module, attr).copy_(torch.from_numpy(arrays[stem]))
                    report.loaded.append(stem)
    return report


def export_csv(model: NN4Small2, folder: str | os.PathLike[str]) -> list[Path]:
    """Write every tensor of ``model`` as the exercise's CSV files; returns the paths."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for layer, module in model.named_layers():
        for suffix, attr in _CSV_FIELDS[_kind(module)]:
            path = root / f"{layer}_{suffix}.csv"
            path.write_text(format_csv_values(getattr(module, attr).detach().cpu().numpy()) + "\n", encoding="ascii")
            written.append(path)
    return written


# --------------------------------------------------------------------------- Keras HDF5


def _keras_layer_group(h5file, name: str):  # -> h5py.Group | None
    """The group of layer ``name`` in a Keras 2 (``model_weights/``) or Keras 3 file."""
    for root in (h5file.get("model_weights"), h5file, h5file.get("layers")):
        if root is not None and name in root and hasattr(root[name], "keys"):
            return root[name]
    return None


def _keras_arrays(group) -> dict[str, np.ndarray]:
    """Weight basename (``kernel``, ``gamma``...) -> array, for one layer's group."""
    import h5py

    found: dict[str, np.ndarray] = {}
    if "vars" in group and "weight_names" not in group.attrs:  # Keras 3: vars/0, vars/1, ...
        return {str(k): np.asarray(group["vars"][k]) for k in group["vars"]}

    def visit(path: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            found[path.rsplit("/", 1)[-1].split(":", 1)[0]] = np.asarray(obj)

    group.visititems(visit)
    return found


def _to_torch_layout(kind: str, attr: str, array: np.ndarray) -> np.ndarray:
    if attr == "weight" and kind == "conv" and array.ndim == 4:  # (kh, kw, in, out) -> (out, in, kh, kw)
        return array.transpose(3, 2, 0, 1)
    if attr == "weight" and kind == "dense" and array.ndim == 2:  # (in, out) -> (out, in)
        return array.T
    return array


def load_h5(model: NN4Small2, path: str | os.PathLike[str], strict: bool = True) -> LoadReport:
    """Load Keras HDF5 weights (``nn4.small2.v1.h5`` and the like) by layer name."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - part of the [train] extra
        raise ModelUnavailableError("reading .h5 weights needs h5py: pip install 'facegate[train]'") from exc
    report = LoadReport(str(path))
    arrays: dict[tuple[str, str], np.ndarray] = {}
    wrong: list[str] = []
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"cannot open {path} as HDF5: {exc}") from exc
    with h5:
        for layer, module in model.named_layers():
            kind = _kind(module)
            groups = (_keras_layer_group(h5, alias) for alias in _KERAS_ALIASES.get(layer, (layer,)))
            group = next((g for g in groups if g is not None), None)
            found = _keras_arrays(group) if group is not None else {}
            for index, (keras_name, attr) in enumerate(_KERAS_FIELDS[kind]):
                array = found.get(keras_name, found.get(str(index)))
                if array is None:
                    report.missing.append(f"{layer}/{keras_name}")
                    continue
                array = _to_torch_layout(kind, attr, array.astype(np.float32))
                target = tuple(getattr(module, attr).shape)
                if array.shape != target:
                    wrong.append(f"{layer}/{keras_name} is {array.shape} (as PyTorch), needs {target}")
                else:
                    arrays[(layer, attr)] = array
    if wrong:
        raise WeightsError(f"{path} does not fit nn4.small2: " + "; ".join(wrong))
    if strict and report.missing:
        raise IncompleteWeightsError(
            f"{path} lacks {len(report.missing)} nn4.small2 weights: " + ", ".join(report.missing),
            report.missing,
        )
    with torch.no_grad():
        for (layer, attr), array in arrays.items():
            getattr(model.get_submodule(layer), attr).copy_(torch.from_numpy(np.ascontiguousarray(array)))
            report.loaded.append(f"{layer}/{attr}")
    return report


# --------------------------------------------------------------------------- any


def load_weights(model: NN4Small2, path: str | os.PathLike[str], strict: bool = True) -> LoadReport:
    """Load ``path`` into ``model``: a CSV folder, a Keras ``.h5`` or a PyTorch ``.pt``."""
    source = Path(path).expanduser()
    if source.is_dir():
        return load_csv(model, source, strict=strict)
    if not source.is_file():
        raise WeightsError(f"no nn4.small2 weights at {source}")
    if source.suffix.lower() in (".h5", ".hdf5", ".keras"):
        return load_h5(model, source, strict=strict)
    if source.suffix.lower() in (".pt", ".pth"):
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds here
            raise WeightsError(f"cannot read {source} as a PyTorch state dict: {exc}") from exc
        result = model.load_state_dict(state, strict=strict)
        return LoadReport(str(source), loaded=list(state), missing=list(result.missing_keys))
    raise WeightsError(f"unknown weights format {source.suffix!r}: give a CSV folder, a .h5 or a .pt file")
