"""Distributed helpers that return rank 0 / world 1 when not distributed (one code path)."""

from __future__ import annotations

import logging
import os
import warnings

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def world_size_from_env() -> int:
    """The number of ranks torchrun launched (``WORLD_SIZE``; 1 outside torchrun), known before
    the process group exists (the recipe depends on the global batch)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def init_from_env(device_type: str) -> bool:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1, ``env://``).

    Returns True when distributed. NCCL on CUDA, gloo elsewhere.
    """
    if world_size_from_env() <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    log.info("distributed: rank %d of %d (%s)", rank(), world_size(), backend)
    return True


def wrap_ddp(model: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False):
    """``model`` under DistributedDataParallel on this rank's ``device`` (``device_ids`` follow
    it on an accelerator; none on the CPU)."""
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.index is not None else None,
        find_unused_parameters=find_unused_parameters)


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (N, ...) from every rank along dim 0 -> (world*N, ...).

    Uses ``torch.distributed.nn.functional.all_gather`` so gradients flow back to each
    rank's own slice; identity when not distributed.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # deprecated in favour of a private API; still autograd-correct
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(x), dim=0)


def mean_over_ranks(x: torch.Tensor) -> float:
    """The mean of a scalar tensor over ranks, as a Python float (the value itself when alone)."""
    if not is_distributed():
        return float(x)
    y = x.detach().float().clone()
    dist.all_reduce(y)
    return float(y) / world_size()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group together: a rank tearing it down while another still talks to
    it can abort the process (seen with gloo on CPU)."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()
