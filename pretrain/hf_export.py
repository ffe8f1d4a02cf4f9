"""``pretrain export --format hf``: a folder that timm and the Hugging Face Hub understand.

OUT/
  config.json                    timm's own layout (written by ``timm.models.save_for_hf``):
                                 architecture, num_classes 0 (headless), num_features,
                                 pretrained_cfg with input_size (3, R, R), mean/std, interpolation
  model.safetensors              the backbone, timm ResNet keys, no classifier
  pretraining_heads.safetensors  FPN, projector and predictor of the online network (keys
                                 fpn.*, projector.*, predictor.*; dimensions in its metadata)
  README.md                      model card: Hub front matter (library_name timm), usage, the
                                 provenance chain (store and manifest sha256, LP-SAM sha256, run
                                 configuration, code revision) and measured results when given
  anaus_provenance.json          the same chain as JSON (like the single-file sidecar)

Load it with ``timm.create_model("local-dir:OUT", pretrained=True)`` (a timm with ``local-dir:``
support; tested with 1.0.31) or ``timm.create_model(arch, pretrained=True, num_classes=0,
pretrained_cfg_overlay=dict(file="OUT/model.safetensors"))``; push it with
``huggingface_hub.upload_folder(folder_path=OUT, repo_id=...)`` and load it with ``hf-hub:``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from maskgen.common.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    safetensors_bytes,
    sha256_file,
)
from maskgen.common.provenance import RUN_INFO_NAME, code_revision
from pretrain.archs import run_arch
from pretrain.checkpoint import CHECKPOINT_NAME, read_checkpoint
from pretrain.export import backbone_state, fpn_state
from pretrain.model_card import model_card, sweep_results
from pretrain.views import IMAGENET_MEAN, IMAGENET_STD

WEIGHTS_NAME = "model.safetensors"            # what timm and the Hub look for first
HEADS_NAME = "pretraining_heads.safetensors"
PROVENANCE_NAME = "anaus_provenance.json"
PAPER_ID = "arXiv:2605.25402"
IMAGENET_CARD_KEYS = ("tag", "origin_url", "paper_ids", "license", "hf_hub_id", "url", "notes")
MLP_HEADS = ("projector.", "predictor.")


def head_state(online_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Online network state -> the pre-training heads: ``fpn.*`` (torchvision
    FeaturePyramidNetwork keys, as in ``FILE.fpn.safetensors``), ``projector.*`` and
    ``predictor.*`` (pretrain.model.mlp keys)."""
    out = {f"fpn.{k}": v for k, v in fpn_state(online_state).items()}
    out.update({k: v.detach().cpu().contiguous() for k, v in online_state.items()
                if k.startswith(MLP_HEADS)})
    if not any(k.startswith("projector.") for k in out):
        raise ValueError("no projector.* tensors in this state dict: not an online network")
    return out


def timm_config(arch: str, backbone: dict[str, torch.Tensor], resolution: int) -> dict[str, Any]:
    """config.json as timm writes it for a headless ``arch`` holding ``backbone`` (checked by a
    strict load), trained on (3, resolution, resolution) inputs with ImageNet mean/std."""
    import timm
    from timm.models import save_for_hf

    model = timm.create_model(arch, pretrained=False, num_classes=0)
    model.load_state_dict(backbone, strict=True)  # the file must be exactly this model
    data_config = {"input_size": (3, resolution, resolution), "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                   "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}
    with tempfile.TemporaryDirectory() as tmp:  # timm's public writer; we keep only its config.json
        save_for_hf(model, tmp, safe_serialization=True, data_config=data_config)
        config = json.loads((Path(tmp) / "config.json").read_text())
    cfg = config["pretrained_cfg"]
    for key in IMAGENET_CARD_KEYS:  # timm copies them from its ImageNet default: not these weights
        cfg.pop(key, None)
    cfg.update(tag="anaus", paper_ids=PAPER_ID, license="other")
    return config


def write_hf_folder(out: str | os.PathLike, online_state: dict[str, torch.Tensor], run_dir: Path, step: int,
                    config: dict[str, Any], results: list[dict] | None = None,
                    results_source: str | None = None) -> dict[str, Any]:
    """Write the folder described in the module docstring; returns the provenance written.

    Args:
        online_state: the online network's state dict (backbone ``encoder.body.*``, heads).
        config: the run's resolved configuration (``model.arch``, ``objective.resolution``).
        results: rows from ``sweep_results`` (task, metric, mean, std, folds, random mean/std).
    """
    out = Path(out)
    if out.suffix == ".safetensors" or out.is_file():
        raise ValueError(f"--out {str(out)!r} must be a folder for --format hf")
    arch = run_arch(config)
    resolution = int(config.get("objective", {}).get("resolution", 224))
    backbone = backbone_state(online_state)
    hf_config = timm_config(arch, backbone, resolution)
    heads = head_state(online_state)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "arch": arch, "step": str(step), "source": "anaus pretrain export --format hf"}
    atomic_write_bytes(out / WEIGHTS_NAME, safetensors_bytes(backbone, meta))
    model_cfg = config.get("model", {})
    atomic_write_bytes(out / HEADS_NAME, safetensors_bytes(heads, {
        **meta, "fpn": f"torchvision FeaturePyramidNetwork(layer1..4 channels, {model_cfg.get('fpn_dim')})",
        "projector": f"mlp({model_cfg.get('fpn_dim')}, {model_cfg.get('proj_hidden')}, {model_cfg.get('proj_dim')})",
        "predictor": f"mlp({model_cfg.get('proj_dim')}, {model_cfg.get('pred_hidden')}, {model_cfg.get('proj_dim')})"}))
    atomic_write_json(out / "config.json", hf_config)
    run_info = json.loads((run_dir / RUN_INFO_NAME).read_text()) if (run_dir / RUN_INFO_NAME).exists() else {}
    inputs = run_info.get("inputs", {})
    provenance = {
        "weights": WEIGHTS_NAME, "weights_sha256": sha256_file(out / WEIGHTS_NAME),
        "heads": HEADS_NAME, "heads_sha256": sha256_file(out / HEADS_NAME),
        "arch": arch, "step": step, "resolution": resolution,
        "store": inputs.get("store"), "lpsam_checkpoint_sha256": inputs.get("lpsam_checkpoint_sha256"),
        "config": config, "run_code_revision": run_info.get("code_revision"),
        "run_command": run_info.get("command"), "code_revision": code_revision(), "run_dir": str(run_dir),
        "results_source": results_source,
    }
    atomic_write_json(out / PROVENANCE_NAME, provenance)
    atomic_write_text(out / "README.md", model_card(provenance, hf_config, results or []))
    return provenance


def export_run_hf(run_dir: str | os.PathLike, out: str | os.PathLike, sweep: str | os.PathLike | None = None,
                  method: str | None = None) -> dict[str, Any]:
    """``pretrain export RUN_DIR --format hf --out DIR [--results SWEEP_DIR [--method NAME]]``."""
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_NAME
    if not ckpt.exists():
        raise FileNotFoundError(f"no checkpoint at {ckpt}: is {run_dir} a `pretrain run` output?")
    results, source = None, None
    if sweep is not None:  # read (and validate) before anything is written
        results, source = sweep_results(Path(sweep), run_dir, method)
    state = read_checkpoint(ckpt)
    return write_hf_folder(out, state["online"], run_dir, state["step"], state["config"], results, source)
