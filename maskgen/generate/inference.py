"""Running a mask predictor on a batch of store-resolution frames, on the right device.

Kept apart from the job (no Zarr, no dask) so benchmarks and other callers can use it alone.
"""

from __future__ import annotations

import numpy as np


def worker_slot() -> int:
    """This process's slot in ``maskgen.common.devices``' policy: a dask worker named by an integer
    (LocalCluster names its workers 0..N-1) is that slot; any other process, including a
    worker of a cluster we did not start (expected to see its own GPU as device 0, as
    dask-cuda and SLURM's per-task GPUs arrange), is slot 0."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    try:
        return int(name)
    except (TypeError, ValueError):
        return 0


def worker_device(name: str, per_device: int = 1):
    """The device of this worker under ``--device name`` (``maskgen.common.devices.slot_device``, with
    ``per_device`` workers sharing one GPU), claimed."""
    from maskgen.common.devices import claim_device, slot_device

    return claim_device(slot_device(name, worker_slot(), per_device=per_device))


def predict_batch(predictor, images: np.ndarray, device, size: int):
    """(B, S, S) uint8 frames -> probs (B, T, S, S) float32 and scores (B, T) float32 tensors,
    on ``device``; frames are resampled to ``predictor.input_size`` and back when it differs."""
    import torch
    import torch.nn.functional as F

    from maskgen.common.devices import autocast_dtype

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
