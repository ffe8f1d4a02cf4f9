"""Export the online backbone with timm's key names (no classifier), its FPN, and a provenance
sidecar.

``FILE.safetensors`` holds the ResNet body only, so timm and torchvision load it unchanged.
The pre-trained FPN goes to the sibling ``FILE.fpn.safetensors`` with torchvision
``FeaturePyramidNetwork`` key names (``inner_blocks.i.0.*``, ``layer_blocks.i.0.*``; i = 0..3
for layer1..layer4), exactly what ``BackboneWithFPN.fpn`` of Mask R-CNN holds.

The tensors load into ``timm.create_model(arch)`` and torchvision's resnet of the same depth
(both share ResNet key names: conv1, bn1, layer1..4). The classifier is not pre-trained:
``fc.*`` is written as an all-zero ImageNet-shaped placeholder (1000 classes) only so that the
plain ``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=FILE))`` and
torchvision's strict ``load_state_dict`` accept the file; fine-tuning replaces it (timm drops it
whenever ``num_classes`` differs), and the sidecar says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from maskgen.common.files import (
    atomic_write_bytes,
    atomic_write_json,
    safetensors_bytes,
    sha256_file,
)
from maskgen.common.provenance import RUN_INFO_NAME, code_revision
from pretrain.archs import DEFAULT_ARCH, run_arch
from pretrain.checkpoint import CHECKPOINT_NAME, read_checkpoint

BODY_PREFIX = "encoder.body."
FPN_PREFIX = "encoder.fpn."
FPN_SUFFIX = ".fpn.safetensors"


def fpn_path(backbone: str | os.PathLike) -> Path:
    """``X.safetensors`` -> ``X.fpn.safetensors`` (the sibling file holding the FPN)."""
    backbone = Path(backbone)
    return backbone.with_name(backbone.name[: -len(".safetensors")] + FPN_SUFFIX)


def _strip_prefix(online_state: dict[str, torch.Tensor], prefix: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` with it removed (detached, CPU, contiguous)."""
    out = {k[len(prefix):]: v.detach().cpu().contiguous()
           for k, v in online_state.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f"no {what} tensors ({prefix}*) in this state dict")
    return out


def backbone_state(online_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Online network state dict -> backbone tensors with timm/torchvision ResNet keys."""
    return _strip_prefix(online_state, BODY_PREFIX, "backbone")


def fpn_state(online_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Online network state dict -> FPN tensors with torchvision FeaturePyramidNetwork keys."""
    return _strip_prefix(online_state, FPN_PREFIX, "FPN")


IMAGENET_CLASSES = 1000


def with_classifier_placeholder(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add ``fc.weight`` (1000, C) and ``fc.bias`` (1000,) of zeros, C = channels of layer4."""
    widths = [v.shape[0] for k, v in tensors.items()
              if k.startswith("layer4.") and k.endswith(".weight") and v.ndim == 1]
    if not widths:
        raise ValueError("no layer4 BatchNorm weights: not a ResNet backbone")
    c = max(widths)
    ref = tensors[next(iter(tensors))]
    return {**tensors, "fc.weight": torch.zeros(IMAGENET_CLASSES, c, dtype=ref.dtype),
            "fc.bias": torch.zeros(IMAGENET_CLASSES, dtype=ref.dtype)}


def write_backbone(out: str | os.PathLike, online_state: dict[str, torch.Tensor], run_dir: Path | None,
                   step: int, config: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """Write OUT (.safetensors, the ResNet body), OUT.fpn.safetensors (its FPN) and OUT.json
    (provenance: store identity, config, revision). ``run_dir`` None: not from a run (step 0)."""
    out = Path(out)
    if out.suffix != ".safetensors" or out.name.endswith(FPN_SUFFIX):
        raise ValueError(f"--out {str(out)!r} must end in .safetensors (and not in {FPN_SUFFIX})")
    tensors = with_classifier_placeholder(backbone_state(online_state))
    fpn = fpn_state(online_state)
    run_info = _read_json(run_dir / RUN_INFO_NAME) if run_dir is not None else {}
    inputs = run_info.get("inputs", {})
    arch = run_arch(config)
    meta = {"format": "pt", "arch": arch, "step": str(step), "source": "anaus pretrain export"}
    atomic_write_bytes(out, safetensors_bytes(tensors, meta))
    atomic_write_bytes(fpn_path(out), safetensors_bytes(fpn, {**meta, "part": "fpn"}))
    sidecar = {
        "weights": out.name,
        "weights_sha256": sha256_file(out),
        "fpn": fpn_path(out).name,
        "fpn_sha256": sha256_file(fpn_path(out)),
        "fpn_channels": int(config.get("model", {}).get("fpn_dim", 0)),
        "arch": arch,
        "step": step,
        "seed": seed if seed is not None else run_info.get("seed"),
        "init": INIT_RECIPE,
        "keys": "timm/torchvision ResNet names; fc.* is an all-zero placeholder (not pre-trained); "
                "the FPN is in the .fpn.safetensors sibling (torchvision FeaturePyramidNetwork names)",
        "store": inputs.get("store"),
        "lpsam_checkpoint_sha256": inputs.get("lpsam_checkpoint_sha256"),
        "config": config,
        "run_code_revision": run_info.get("code_revision"),
        "code_revision": code_revision(),
        "run_dir": str(run_dir) if run_dir is not None else None,
    }
    atomic_write_json(out.with_suffix(".json"), sidecar)
    return sidecar


INIT_RECIPE = ("timm ResNet (features_only) default initialisation, zero_init_last (last BatchNorm "
               "gamma of every residual block = 0) + torchvision FeaturePyramidNetwork default "
               "initialisation, drawn after torch.manual_seed(seed)")


def initial_state(arch: str = DEFAULT_ARCH, seed: int = 0, fpn_dim: int = 256) -> dict[str, torch.Tensor]:
    """The online network's state at step 0 of ``pretrain run --arch ARCH --seed SEED``."""
    from pretrain.model import ModelConfig, build_online

    return build_online(ModelConfig(arch=arch, fpn_dim=fpn_dim), seed).state_dict()


def export_initial(out: str | os.PathLike, arch: str = DEFAULT_ARCH, seed: int = 0,
                   fpn_dim: int = 256) -> dict[str, Any]:
    """``pretrain init``: the step-0 backbone + FPN, the fair ``random`` reference."""
    from pretrain.model import ModelConfig

    config = {"model": dataclasses.asdict(ModelConfig(arch=arch, fpn_dim=fpn_dim))}
    return write_backbone(out, initial_state(arch, seed, fpn_dim), None, 0, config, seed=seed)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """``pretrain export RUN_DIR --out FILE``: from RUN_DIR's last checkpoint."""
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_NAME
    if not ckpt.exists():
        raise FileNotFoundError(f"no checkpoint at {ckpt}: is {run_dir} a `pretrain run` output?")
    state = read_checkpoint(ckpt)
    return write_backbone(out, state["online"], run_dir, state["step"], state["config"])


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}
