"""Reading weight files without surprises: one-line errors, no pickle, finite values only.

``read_safetensors`` and ``read_torch_weights`` turn every way a weights file can be wrong (a
truncated download, a pickle renamed ``.safetensors``, a checkpoint that ``weights_only=True``
refuses) into a ``WeightsFileError`` whose one-line message names the file and what it holds.
``check_finite`` refuses tensors holding NaN or inf, naming the first bad one; every loader
of weights that training or evaluation goes on from calls it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle protocol header; torch.save's zip container


class WeightsFileError(ValueError):
    """A weights file that cannot be read as what it claims to be (message says why)."""


class NonFiniteWeightsError(WeightsFileError):
    """Weights holding NaN or inf."""


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


def read_safetensors(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (on the CPU).

    Raises:
        WeightsFileError: missing file, a pickle or torch.save file, or a corrupt/truncated file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{what} {path}: not a file")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        head = _head(path)
        if head.startswith(_PICKLE_MAGIC):
            raise WeightsFileError(f"{what} {path} is a pickle / torch.save file, not safetensors "
                                   "(it was not loaded: no pickle is ever executed)") from err
        raise WeightsFileError(f"{what} {path} is not a readable safetensors file (corrupt or truncated?): "
                               f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


def read_torch_weights(path: str | os.PathLike, what: str = "checkpoint", mmap: bool = False):
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors.

    Raises:
        WeightsFileError: the file is not a torch checkpoint, is truncated, or holds objects
            that ``weights_only=True`` refuses (arbitrary pickled classes are never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{what} {path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - unpickling refusals come in many classes
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            first = "it holds pickled objects other than tensors, refused by weights_only=True"
        raise WeightsFileError(f"{what} {path} cannot be loaded safely: {first}") from err


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> tuple[str, str] | None:
    """(name, what) of the first floating tensor holding NaN or inf, or None when all are finite."""
    for name, value in tensors.items():
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            kind = "NaN" if torch.isnan(value).any() else "inf"
            return name, kind
    return None


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise ``NonFiniteWeightsError`` naming the first tensor of ``what`` that is not finite."""
    bad = first_non_finite(tensors)
    if bad is not None:
        raise NonFiniteWeightsError(f"{what}: tensor {bad[0]} holds {bad[1]}; non-finite weights are refused")


def largest_weight(tensors: Mapping[str, torch.Tensor]) -> tuple[str, float]:
    """(name, value) of the largest absolute value among floating tensors (growth checks)."""
    best = ("", 0.0)
    for name, value in tensors.items():
        if torch.is_tensor(value) and value.is_floating_point() and value.numel():
            top = float(value.detach().abs().max())
            if top > best[1]:
                best = (name, top)
    return best
