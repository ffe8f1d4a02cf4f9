"""``--device auto``: CUDA when present, else CPU. No device literal anywhere else."""

from __future__ import annotations


def resolve_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``).

    Raises:
        ValueError: ``name`` is not a device torch knows, or asks for an accelerator that
            is not present.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(torch.accelerator.current_accelerator().type, torch.cuda.current_device())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a device torch knows ({err}); use auto, cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} asked for CUDA, but torch sees no CUDA device; use --device auto or cpu")
    return device


def autocast_dtype(device) -> object | None:
    """bf16 autocast on CUDA devices that support it, none elsewhere (CPU runs in fp32)."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


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
