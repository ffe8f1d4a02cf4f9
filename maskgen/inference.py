"""Running a mask predictor on a batch of store-resolution frames, on the right device.

Kept apart from the job (no Zarr, no dask) so benchmarks and other callers can use it alone.
"""

from __future__ import annotations

import zlib

import numpy as np


def worker_slot() -> int:
    """This process's worker number (dask LocalCluster names workers 0..N-1), else 0."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    try:
        return int(name)
    except (TypeError, ValueError):
        return zlib.crc32(str(name).encode())  # stable across processes, unlike hash()


def pick_device(name: str):
    """``resolve_device(name)``; with ``auto`` or ``cuda`` (no index) and several visible GPUs,
    dask worker i pins GPU i mod count (an explicit ``cuda:N`` is kept as given)."""
    import torch

    from maskgen.devices import resolve_device

    device = resolve_device(name)
    if name in ("auto", "cuda") and device.type == "cuda" and torch.cuda.device_count() > 1:
        device = torch.device(device.type, worker_slot() % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def predict_batch(predictor, images: np.ndarray, device, size: int):
    """(B, S, S) uint8 frames -> probs (B, T, S, S) float32 and scores (B, T) float32 tensors,
    on ``device``; frames are resampled to ``predictor.input_size`` and back when it differs."""
    import torch
    import torch.nn.functional as F

    from maskgen.devices import autocast_dtype

    x = torch.from_numpy(images).to(device)
    side = int(predictor.input_size)
    if side != size:
        x = F.interpolate(x[:, None].float(), size=(side, side), mode="bilinear", align_corners=False)
        x = x[:, 0].round().clamp(0, 255).to(torch.uint8)
    dtype = autocast_dtype(device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        probs, scores = predictor(x)
    probs, scores = probs.float(), scores.float()
    if side != size:
        probs = F.interpolate(probs, size=(size, size), mode="bilinear", align_corners=False)
    return probs, scores
