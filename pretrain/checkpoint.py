"""Training checkpoints: one ``torch.save`` file of weights_only-loadable content, written
atomically (temp file + rename), so a killed run always leaves the last good checkpoint.

Content: online and target state dicts, optimizer state, step, the global torch RNG state, the
resolved config (a JSON-able dict) and the number of ranks that made it. The data position and
every random draw of a step are pure functions of (seed, step), so the step is all a resumed
run needs to continue exactly.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from maskgen.common.files import atomic_path
from maskgen.common.weightfiles import (
    check_finite,
    first_non_finite,
    largest_weight,
    read_torch_weights,
)

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "checkpoint.pt"
# weights of a healthy ResNet stay within a few units; this is growth that only a runaway
# learning rate (e.g. --lr 1e8 gave 6e25) produces
WEIGHT_GROWTH_WARNING = 1e4


class NonFiniteStateError(RuntimeError):
    """The state to be saved holds NaN/inf: it is not saved, the previous checkpoint is kept."""


def describe_checkpoint(path: str | os.PathLike) -> str:
    """``PATH (step N)`` for the checkpoint at ``path``, or ``none yet``; reads only the step."""
    path = Path(path)
    if not path.exists():
        return "none yet"
    try:
        step = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception:  # noqa: BLE001 - describing must not fail
        return f"{path} (unreadable)"
    return f"{path} (step {step})"


def check_state(online, target, step: int, path) -> None:
    """Refuse a non-finite state (parameters and buffers of both networks); warn on runaway growth."""
    for name, module in (("online", online), ("target", target)):
        bad = first_non_finite(module.state_dict())
        if bad is not None:
            raise NonFiniteStateError(
                f"step {step}: {name} tensor {bad[0]} holds {bad[1]}; not saved as a checkpoint. "
                f"Last good checkpoint: {describe_checkpoint(path)}. Resume it with a lower --lr "
                "(`pretrain run ... --resume --lr X`) or check the store (`maskgen verify`).")
    params = dict(online.named_parameters())
    name, top = largest_weight(params)
    if top > WEIGHT_GROWTH_WARNING:
        log.warning("step %d: weights have grown to |w| = %.3g (%s); the learning rate is likely too high "
                    "(--lr)", step, top, name)


def save_checkpoint(path: str | os.PathLike, *, online, target, optimizer, step: int,
                    config: dict[str, Any], world_size: int = 1) -> None:
    """Write the checkpoint atomically; a non-finite state raises ``NonFiniteStateError`` and
    leaves the previous checkpoint in place; a failed write raises an OSError naming ``path``."""
    check_state(online, target, step, path)
    state = {
        "online": online.state_dict(),
        "target": target.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "rng": torch.get_rng_state(),
        "config": config,
        "world_size": int(world_size),
    }
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except RuntimeError as err:  # torch's writer reports a full disk as "unexpected pos ..."
        folder = Path(path).parent
        full = shutil.disk_usage(folder).free < (64 << 20)
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      "no space left on device" if full else f"write failed ({str(err).splitlines()[0]})",
                      str(path)) from err


def load_checkpoint(path: str | os.PathLike, *, online, target, optimizer) -> dict[str, Any]:
    """Restore the networks and optimizer in place (strict keys); returns step, config and
    world_size (None for a checkpoint written before it was recorded)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    state = read_torch_weights(path, "--resume: checkpoint")
    for name in ("online", "target"):
        check_finite(state[name], f"--resume: checkpoint {path} ({name} network)")
    online.load_state_dict(state["online"], strict=True)
    target.load_state_dict(state["target"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    world = state.get("world_size")
    return {"step": int(state["step"]), "config": state["config"],
            "world_size": None if world is None else int(world)}


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict (CPU tensors), e.g. for export."""
    return read_torch_weights(path, "checkpoint")


def resume_changes(saved: dict[str, Any], current: dict[str, Any], lower_lr: bool = False
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's config as this resumed run may change it, and the changes made.

    With ``lower_lr`` (``--lr`` given explicitly on ``--resume``) the base learning rate may
    go down, e.g. after a NaN stop; it is recorded (run.json ``resumed.changes``) and the run
    continues from the checkpoint's step with the lower rate. Raising it is refused.

    Raises:
        ValueError: a higher learning rate was asked for.
    """
    saved = copy.deepcopy(saved)
    old, new = saved.get("optim", {}).get("base_lr"), current.get("optim", {}).get("base_lr")
    if not lower_lr or old is None or new is None or new == old:
        return saved, {}
    if new > old:
        raise ValueError(f"--resume --lr {new}: the checkpoint was trained with --lr {old}; a resume may only "
                         "lower the learning rate (start a new --out to train with a higher one)")
    saved["optim"]["base_lr"] = new
    log.warning("resuming with --lr %g instead of the checkpoint's %g", new, old)
    return saved, {"base_lr": {"from": old, "to": new}}
