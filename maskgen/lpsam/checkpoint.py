"""Official SAM checkpoints into LP-SAM, with every key accounted for.

``convert_sam_state_dict`` resamples the official tensors to LP-SAM's geometry;
``load_base_weights`` loads them into an ``LPSAM``: every official key must be consumed and
only LP-SAM's new modules (``adapter.*``, ``lpe.*``) may be left without a value. The final
``load_state_dict`` is strict: new modules keep their current values, merged in explicitly.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

import torch

from maskgen.lpsam.config import OFFICIAL_PATCH_SIZE, LPSAMConfig
from maskgen.lpsam.model import LPSAM, NEW_MODULES
from maskgen.lpsam.resample import adjoint_resize_kernel, resize_pos_embed, resize_rel_pos

log = logging.getLogger(__name__)

_REL_POS = re.compile(r"^image_encoder\.blocks\.(\d+)\.attn\.rel_pos_[hw]$")


class CheckpointKeyError(KeyError):
    """A state dict does not match the model: lists what is missing and what is unexpected."""

    def __init__(self, what: str, missing: Iterable[str], unexpected: Iterable[str]):
        self.missing, self.unexpected = sorted(missing), sorted(unexpected)
        super().__init__(f"{what}: missing keys {self.missing[:10]}{'...' if len(self.missing) > 10 else ''} "
                         f"({len(self.missing)}), unexpected keys {self.unexpected[:10]}"
                         f"{'...' if len(self.unexpected) > 10 else ''} ({len(self.unexpected)})")


def is_new_key(key: str) -> bool:
    """Whether ``key`` belongs to a module LP-SAM adds to SAM (adapter or LPE)."""
    return key.startswith(NEW_MODULES)


def convert_sam_state_dict(state: Mapping[str, torch.Tensor], config: LPSAMConfig) -> dict[str, torch.Tensor]:
    """Official SAM state dict -> LP-SAM's base keys, resampled to ``config``'s grid.

    Raises:
        ValueError: the checkpoint's encoder width or patch size does not fit ``config``.
    """
    out: dict[str, torch.Tensor] = {}
    patch = state.get("image_encoder.patch_embed.proj.weight")
    if patch is None:
        raise ValueError("not an official SAM state dict: no image_encoder.patch_embed.proj.weight")
    if patch.shape[0] != config.embed_dim or patch.shape[-1] != OFFICIAL_PATCH_SIZE:
        raise ValueError(f"checkpoint encoder is {patch.shape[0]} wide with {patch.shape[-1]}px patches; "
                         f"model {config.name!r} needs {config.embed_dim} wide with {OFFICIAL_PATCH_SIZE}px "
                         f"(use --model matching the checkpoint: vit_b/vit_l/vit_h)")
    global_blocks = set(config.global_attn_indexes)
    for key, value in state.items():
        if key == "image_encoder.patch_embed.proj.weight":
            value = adjoint_resize_kernel(value, config.patch_size)
        elif key == "image_encoder.pos_embed":
            value = resize_pos_embed(value, config.grid)
        elif m := _REL_POS.match(key):
            span = config.grid if int(m.group(1)) in global_blocks else config.window_size
            value = resize_rel_pos(value, 2 * span - 1)
        out[key] = value
    return out


def read_sam_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """An official SAM ``.pth`` (a plain state dict), loaded with ``weights_only=True``."""
    from maskgen.common.weightfiles import read_torch_weights

    state = read_torch_weights(path, "SAM checkpoint")
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def check_base_keys(model: LPSAM, base: Mapping[str, torch.Tensor]) -> None:
    """Raise ``CheckpointKeyError`` unless ``base`` covers exactly the model's non-new keys."""
    own = model.state_dict()
    expected = {k for k in own if not is_new_key(k)}
    missing, unexpected = expected - set(base), set(base) - expected
    if missing or unexpected:
        raise CheckpointKeyError("official SAM weights do not fit LP-SAM", missing, unexpected)
    wrong = [f"{k}: {tuple(base[k].shape)} vs {tuple(own[k].shape)}" for k in expected
             if tuple(base[k].shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"shape mismatch after resampling: {wrong[:5]}")


def load_base_weights(model: LPSAM, base: Mapping[str, torch.Tensor]) -> None:
    """Load converted SAM weights; the new modules keep their values. Strict, keys checked."""
    check_base_keys(model, base)
    merged = {k: v for k, v in model.state_dict().items() if is_new_key(k)}
    merged.update(base)
    model.load_state_dict(merged, strict=True)


def load_sam_checkpoint(model: LPSAM, path: str | os.PathLike) -> None:
    """Read, resample and load an official SAM checkpoint into ``model``."""
    load_base_weights(model, convert_sam_state_dict(read_sam_checkpoint(path), model.config))
    log.info("loaded SAM checkpoint %s into LP-SAM %s", path, model.config.name)


def load_subset(model: LPSAM, weights: Mapping[str, torch.Tensor], expected: set[str]) -> None:
    """Load ``weights`` whose keys must be exactly ``expected`` (a subset of the model's keys);
    every other tensor keeps its value. The final load is strict."""
    own = model.state_dict()
    missing, unexpected = expected - set(weights), set(weights) - expected
    unknown = expected - set(own)
    if missing or unexpected or unknown:
        raise CheckpointKeyError("LP-SAM weights do not fit the model", missing | unknown, unexpected)
    merged = dict(own)
    merged.update(weights)
    model.load_state_dict(merged, strict=True)


def load_partial(model: LPSAM, weights: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> None:
    """Load ``weights`` that must be exactly the model's keys under ``prefixes`` ("" = all)."""
    load_subset(model, weights, {k for k in model.state_dict() if k.startswith(prefixes)})
