"""Export the online backbone with timm's key names (no classifier) + a provenance sidecar.

The tensors load into ``timm.create_model(arch)`` and torchvision's resnet of the same depth
(both share ResNet key names: conv1, bn1, layer1..4). The classifier is not pre-trained:
``fc.*`` is written as an all-zero ImageNet-shaped placeholder (1000 classes) only so that the
plain ``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=FILE))`` and
torchvision's strict ``load_state_dict`` accept the file; fine-tuning replaces it (timm drops it
whenever ``num_classes`` differs), and the sidecar says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from maskgen.provenance import (
    atomic_write_bytes,
    atomic_write_json,
    code_revision,
    safetensors_bytes,
    sha256_file,
)
from pretrain.checkpoint import CHECKPOINT_NAME, read_checkpoint

BODY_PREFIX = "encoder.body."


def backbone_state(online_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Online network state dict -> backbone tensors with timm/torchvision ResNet keys."""
    out = {k[len(BODY_PREFIX):]: v.detach().cpu().contiguous()
           for k, v in online_state.items() if k.startswith(BODY_PREFIX)}
    if not out:
        raise ValueError("no backbone tensors (encoder.body.*) in this state dict")
    return out


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


def write_backbone(out: str | os.PathLike, online_state: dict[str, torch.Tensor], run_dir: Path,
                   step: int, config: dict[str, Any]) -> dict[str, Any]:
    """Write OUT (.safetensors) and OUT.json (provenance: store identity, config, revision)."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {str(out)!r} must end in .safetensors")
    tensors = with_classifier_placeholder(backbone_state(online_state))
    run_info = _read_json(run_dir / "run.json")
    inputs = run_info.get("inputs", {})
    meta = {"format": "pt", "arch": str(config.get("model", {}).get("arch", "")), "step": str(step),
            "source": "anaus pretrain export"}
    atomic_write_bytes(out, safetensors_bytes(tensors, meta))
    sidecar = {
        "weights": out.name,
        "weights_sha256": sha256_file(out),
        "arch": meta["arch"],
        "step": step,
        "keys": "timm/torchvision ResNet names; fc.* is an all-zero placeholder (not pre-trained)",
        "store": inputs.get("store"),
        "lpsam_checkpoint_sha256": inputs.get("lpsam_checkpoint_sha256"),
        "config": config,
        "run_code_revision": run_info.get("code_revision"),
        "code_revision": code_revision(),
        "run_dir": str(run_dir),
    }
    atomic_write_json(out.with_suffix(".json"), sidecar)
    return sidecar


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
