"""What ``maskgen adapt`` writes: the adaptation folder and the per-phase resume checkpoints.

ADAPT_DIR/lpsam.safetensors  weights (every weight for ``tiny`` from random init; for a SAM
                             base only what adaptation trains: ``adapter.*``, ``lpe.*`` and
                             SAM's ``mask_decoder.*``)
ADAPT_DIR/lpsam.json         config, anatomy classes, input size, base checkpoint path+sha256
ADAPT_DIR/checkpoints/phase{1,2}.safetensors   resume state (weights + AdamW moments + step)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open

from maskgen.common.files import (
    atomic_write_bytes,
    atomic_write_json,
    safetensors_bytes,
    sha256_file,
)
from maskgen.lpsam.config import LPSAMConfig
from maskgen.lpsam.data import AnatomyClass
from maskgen.lpsam.model import LPSAM, build_lpsam

FORMAT = "anaus-lpsam/1"
WEIGHTS = "lpsam.safetensors"
META = "lpsam.json"
# what adaptation changes when it starts from SAM's weights: the new modules and SAM's mask
# decoder (its IoU head always learns; all of it with ``--train-decoder``; 4 M for ViT-B)
TRAINED_PREFIXES = ("adapter.", "lpe.", "mask_decoder.")
EARLIER_PREFIXES = ("adapter.", "lpe.")  # folders written before the decoder could train


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_adapt_dir(out: str | os.PathLike, model: LPSAM, classes: list[AnatomyClass],
                   base_checkpoint: dict | None, extra: dict | None = None) -> dict:
    """Write lpsam.safetensors + lpsam.json atomically; returns the JSON written.

    ``base_checkpoint`` = {"path": ..., "sha256": ...} when the model started from official SAM
    weights (then only the trained modules are saved), None for a model trained from scratch.
    """
    out = Path(out)
    state = model.state_dict()
    if base_checkpoint is not None:
        state = {k: v for k, v in state.items() if k.startswith(TRAINED_PREFIXES)}
    atomic_write_bytes(out / WEIGHTS, safetensors_bytes(_contiguous(state), metadata={"format": FORMAT}))
    meta = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "input_size": model.config.input_size,
        "classes": [c.to_dict() for c in classes],
        "weights": "trained-modules" if base_checkpoint is not None else "full",
        "base_checkpoint": base_checkpoint,
        "weights_sha256": sha256_file(out / WEIGHTS),
        **(extra or {}),
    }
    atomic_write_json(out / META, meta)
    return meta


def read_meta(adapt_dir: str | os.PathLike) -> dict:
    """lpsam.json of an adaptation folder (raises FileNotFoundError / ValueError)."""
    path = Path(adapt_dir) / META
    if not path.exists() or not (Path(adapt_dir) / WEIGHTS).exists():
        raise FileNotFoundError(f"{adapt_dir}: no {WEIGHTS} + {META}; create them with `maskgen adapt --out DIR`")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_adapt_dir(adapt_dir: str | os.PathLike, sam_checkpoint: str | os.PathLike | None = None
                   ) -> tuple[LPSAM, dict]:
    """Rebuild LP-SAM (on CPU, eval mode) from an adaptation folder.

    Args:
        sam_checkpoint: the official SAM checkpoint, when it moved since adaptation
            (default: the path recorded in lpsam.json). Its sha256 must match the record.
    """
    from maskgen.lpsam.checkpoint import load_partial, load_sam_checkpoint

    meta = read_meta(adapt_dir)
    config = LPSAMConfig.from_dict(meta["model"])
    model = build_lpsam(config, len(meta["classes"]))
    from maskgen.common.weightfiles import check_finite, read_safetensors

    weights = read_safetensors(Path(adapt_dir) / WEIGHTS, "LP-SAM weights")
    check_finite(weights, f"LP-SAM weights {Path(adapt_dir) / WEIGHTS}")
    base = meta.get("base_checkpoint")
    if base is None:
        load_partial(model, weights, ("",))
    else:
        path = Path(sam_checkpoint or base["path"])
        if not path.exists():
            raise FileNotFoundError(f"SAM base checkpoint {path} not found; pass its current path")
        sha = sha256_file(path)
        if sha != base["sha256"]:
            raise ValueError(f"SAM checkpoint {path} has sha256 {sha}, adaptation used {base['sha256']}")
        load_sam_checkpoint(model, path)
        decoder_saved = any(k.startswith("mask_decoder.") for k in weights)
        load_partial(model, weights, TRAINED_PREFIXES if decoder_saved else EARLIER_PREFIXES)
    return model.eval(), meta


def save_phase_state(path: str | os.PathLike, model: LPSAM, optimizer: torch.optim.Optimizer,
                     step: int, done: bool, fingerprint: str, history: list[float], seconds: float = 0.0) -> None:
    """Atomically write trainable weights, AdamW moments, the step of one phase and its training
    seconds so far (summed over resumed runs)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    own = model.state_dict()
    tensors = {f"model.{k}": own[k] for k in phase_keys(model)}
    state = optimizer.state_dict()["state"]
    for i, _ in enumerate(names):
        for key, value in state.get(i, {}).items():
            tensors[f"optim.{i}.{key}"] = value if value.ndim else value.reshape(1)
    meta = {"step": str(step), "done": str(done), "fingerprint": fingerprint, "history": json.dumps(history),
            "seconds": f"{seconds:.1f}"}
    atomic_write_bytes(path, safetensors_bytes(_contiguous(tensors), metadata=meta))


def phase_keys(model: LPSAM) -> set[str]:
    """State-dict keys a phase changes: trainable parameters + persistent buffers (BatchNorm
    statistics) of the top-level modules being trained."""
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    scope = tuple(sorted({n.split(".")[0] + "." for n in trained}))
    return trained | {k for k in model.state_dict() if k.startswith(scope)}


def load_phase_state(path: str | os.PathLike, model: LPSAM, optimizer: torch.optim.Optimizer,
                     fingerprint: str) -> tuple[int, bool, list[float], float]:
    """Restore a phase checkpoint into ``model`` and ``optimizer``; returns (step, done, history,
    training seconds so far)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    if meta.get("fingerprint") != fingerprint:
        raise ValueError(f"{path} was written with other settings (fingerprint {meta.get('fingerprint')} vs "
                         f"{fingerprint}); resume with the same options or use a fresh --out")
    tensors = load_file(str(path), device="cpu")
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    from maskgen.lpsam.checkpoint import load_subset

    load_subset(model, weights, phase_keys(model))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    opt_state = {}
    for i, _ in enumerate(names):
        entry = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"optim.{i}.")}
        if entry:
            if "step" in entry:
                entry["step"] = entry["step"].reshape(())
            opt_state[i] = entry
    optimizer.load_state_dict({"state": opt_state, "param_groups": optimizer.state_dict()["param_groups"]})
    return (int(meta["step"]), meta["done"] == "True", json.loads(meta.get("history", "[]")),
            float(meta.get("seconds", 0.0)))
