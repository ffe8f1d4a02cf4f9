"""Training checkpoints: one ``torch.save`` file of weights_only-loadable content, written
atomically (temp file + rename), so a killed run always leaves the last good checkpoint.

Content: online and target state dicts, optimizer state, step, the global torch RNG state, the
resolved config (a JSON-able dict) and the number of ranks that made it. The data position and
every random draw of a step are pure functions of (seed, step), so the step is all a resumed
run needs to continue exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from maskgen.provenance import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | os.PathLike, *, online, target, optimizer, step: int,
                    config: dict[str, Any], world_size: int = 1) -> None:
    state = {
        "online": online.state_dict(),
        "target": target.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "rng": torch.get_rng_state(),
        "config": config,
        "world_size": int(world_size),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, *, online, target, optimizer) -> dict[str, Any]:
    """Restore the networks and optimizer in place (strict keys); returns step, config and
    world_size (None for a checkpoint written before it was recorded)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    online.load_state_dict(state["online"], strict=True)
    target.load_state_dict(state["target"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    world = state.get("world_size")
    return {"step": int(state["step"]), "config": state["config"],
            "world_size": None if world is None else int(world)}


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict (CPU tensors), e.g. for export."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
