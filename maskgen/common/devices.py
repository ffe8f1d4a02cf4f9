"""The device policy: ``--device`` names, and which device rank or worker i gets.

One rule for every stage (pre-training ranks under torchrun, ``maskgen run`` dask workers,
``evaluate sweep`` workers): slot i (the torchrun ``LOCAL_RANK``, or the worker's number)
gets accelerator ``first + i``, where ``first`` is the index in ``--device cuda:N`` (0 for
``auto`` / ``cuda``). Each slot therefore has a GPU of its own; asking for more slots than
there are GPUs from ``first`` on is an error, never a silent sharing of one GPU. Sharing is
only ever explicit: with ``per_device`` = m (``maskgen run --workers-per-gpu m``, whose
workers leave the GPU idle while they post-process on the CPU) slot i gets ``first + i // m``.
The CPU (and ``mps``, a single device) is shared by every slot. ``cuda:N`` is checked against
the devices present when it is resolved, which every command does before it writes anything.

No device literal anywhere else in the code: everything resolves through here.
"""

from __future__ import annotations

import os


def accelerator_count(kind: str) -> int:
    """How many devices of type ``kind`` (``cuda``, ``xpu``, ...) torch sees; 0 when none."""
    import torch

    if kind == "cpu":
        return 0
    module = getattr(torch, kind, None)
    if module is None or not hasattr(module, "device_count") or not module.is_available():
        return 0
    return int(module.device_count())


def _indexed(device) -> bool:
    """Whether slots of this device type get one device each (a numbered accelerator)."""
    return device.type not in ("cpu", "mps", "meta")


def resolve_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``).

    ``auto`` is the first CUDA device when one is present, else the CPU; a bare accelerator
    name gets index 0. An index is checked against the devices present.

    Raises:
        ValueError: ``name`` is not a device torch knows, or asks for an accelerator (or an
            index) that is not present.
    """
    import torch

    if name == "auto":
        # the first CUDA device (the index is the slot policy's to choose, not current_device())
        name = f"{torch.accelerator.current_accelerator().type}:0" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a device torch knows ({err}); use auto, cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} asked for CUDA, but torch sees no CUDA device; use --device auto or cpu")
    if not _indexed(device):
        return device
    count = accelerator_count(device.type)
    index = device.index or 0
    if index >= count:
        raise ValueError(f"--device {name!r}: torch sees {count} {device.type} device(s) "
                         f"({device.type}:0..{device.type}:{count - 1}); choose one of them or --device auto")
    return torch.device(device.type, index)


def check_slots(name: str, slots: int, what: str = "workers", per_device: int = 1):
    """The device of slot 0 after checking that ``slots`` slots each get their own accelerator
    (or a ``per_device`` share of one).

    Args:
        slots: how many ranks or workers will run on this machine.
        what: their name in the error (``workers``, ``ranks``).
        per_device: slots that may share one accelerator (1: none share).
    Raises:
        ValueError: ``--device`` is unknown or absent, or there are fewer accelerators from
            its index on than ``slots`` need.
    """
    device = resolve_device(name)
    if slots < 1 or per_device < 1:
        raise ValueError(f"{slots} {what}, {per_device} per device: need at least 1 of each")
    if _indexed(device):
        count, first = accelerator_count(device.type), device.index or 0
        needed = -(-slots // per_device)
        if first + needed > count:
            share = "" if per_device == 1 else f" (at most {per_device} per device)"
            raise ValueError(f"{slots} {what} need {needed} {device.type} device(s){share} from {device} on, "
                             f"but torch sees {count} ({device.type}:0..{device.type}:{count - 1}); run at most "
                             f"{(count - first) * per_device} {what}, or use --device cpu")
    return device


def slot_device(name: str, slot: int, slots: int | None = None, what: str = "workers", per_device: int = 1):
    """The device of rank or worker ``slot`` (0-based) under ``--device name``: accelerator
    ``first + slot // per_device`` (see the module docstring), or the shared CPU.

    Raises:
        ValueError: as ``check_slots`` for ``max(slots, slot + 1)`` slots.
    """
    import torch

    device = check_slots(name, max(slots or 1, slot + 1), what, per_device)
    if not _indexed(device):
        return device
    return torch.device(device.type, (device.index or 0) + slot // per_device)


def slot_devices(name: str, slots: int, what: str = "workers", per_device: int = 1) -> list[str]:
    """``slot_device`` for slots 0..slots-1, as strings a child process can resolve again."""
    return [str(slot_device(name, i, slots, what, per_device)) for i in range(slots)]


def claim_device(device):
    """Make ``device`` this process's current accelerator (a no-op for the CPU); returns it.
    NCCL needs it before the process group starts, and stray allocations then land there."""
    import torch

    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def rank_device(name: str = "auto"):
    """The device of this process under torchrun (``LOCAL_RANK`` of ``LOCAL_WORLD_SIZE``), or
    of the only process, claimed as the current device. Call it before
    ``torch.distributed.init_process_group``.

    Raises:
        ValueError: more ranks on this machine than accelerators (every rank raises the same).
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
    return claim_device(slot_device(name, local_rank, local_world, what="ranks per machine"))


def autocast_dtype(device) -> object | None:
    """bf16 autocast on CUDA devices that support it, none elsewhere (CPU runs in fp32)."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


# channels-last convolutions are faster on the GPU and on the CPU too (oneDNN: about even at the
# demo's pre-training batch 16 / 96 px, 1.27x at batch 8 / 224 px, 1.18x for a quick-profile
# fine-tuning cell); not on Apple's MPS
_CONTIGUOUS_DEVICES = ("mps",)


def prefers_channels_last(device) -> bool:
    """Whether convolutional models and their inputs should be channels-last on this device."""
    return device.type not in _CONTIGUOUS_DEVICES


def syncs_batchnorm(device) -> bool:
    """Whether torch's SyncBatchNorm runs on this device (accelerators only, not the CPU)."""
    return device.type in ("cuda", "xpu")


def synchronize(device) -> None:
    """Wait for the device's queued work (timings); nothing to wait for on the CPU."""
    import torch

    if device.type != "cpu" and hasattr(torch, device.type):
        getattr(torch, device.type).synchronize(device)


def timed(fn, device, repeats: int) -> float:
    """Seconds per call of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    import time

    fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats
