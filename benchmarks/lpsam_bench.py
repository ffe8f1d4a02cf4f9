"""The setup LP-SAM's benchmarks share: the common options, the device and its autocast dtype,
and one synthetic training batch (the step benchmarks ``bench_detail.py``, ``bench_replay.py``,
``bench_decoder_dim.py``) or a model and synthetic held-out frames (the evaluation benchmarks
``bench_heldout_eval.py``, ``bench_eval_memory.py``); and the timing of one model config's phase-1
step and latent-prompt inference (``time_config``)."""

from __future__ import annotations

import argparse

import torch

from maskgen.common.devices import autocast_dtype, resolve_device, timed
from maskgen.lpsam.config import LPSAMConfig, get_config
from maskgen.lpsam.model import LPSAM, build_lpsam
from maskgen.lpsam.testing import synthetic_pairs
from maskgen.lpsam.train import PhaseSettings, draw_batch, phase1_loss, phase2_loss, set_trainable


def step_bench_parser(description: str) -> argparse.ArgumentParser:
    """--model, --device, --batch-size, --repeats, --threads (add a benchmark's own after)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def step_bench_setup(args: argparse.Namespace):
    """(device, autocast dtype or None, the model's config, pairs, batch) for parsed ``args``;
    the batch is (images, target, valid) of ``args.batch_size`` synthetic training frames."""
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = get_config(args.model)
    pairs = synthetic_pairs(n_per_dataset=8, size=config.input_size, seed=0)
    batch = draw_batch(pairs, pairs.indices(held_out=False), args.batch_size, torch.Generator().manual_seed(0),
                       False, device)
    return device, autocast_dtype(device), config, pairs, batch


def heldout_bench_setup(args: argparse.Namespace):
    """(device, model with random weights of ``args.model`` in eval mode, pairs) for parsed ``args``;
    the pairs hold ``2 * args.frames`` synthetic frames per dataset, half of them held out."""
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = get_config(args.model)
    pairs = synthetic_pairs(n_per_dataset=2 * args.frames, size=config.input_size, seed=0, held_out_fraction=0.5)
    torch.manual_seed(0)
    return device, build_lpsam(config, len(pairs.classes)).to(device).eval(), pairs


def time_config(config: LPSAMConfig, pairs, batch, device: torch.device, dtype, repeats: int,
                phase2: bool = False) -> tuple[LPSAM, dict[str, float]]:
    """Build ``config`` (seed 0) and time, in seconds, one phase-1 training step on ``batch``
    (forward, backward; ``phase1``), with ``phase2`` also one phase-2 step with the decoder trained
    (``phase2``), and latent-prompt inference on its frames (``inference``)."""
    images, target, valid = batch
    torch.manual_seed(0)
    model = build_lpsam(config, len(pairs.classes)).to(device)
    phases = {"phase1": (1, PhaseSettings(steps=1, lr=1e-3), phase1_loss)}
    if phase2:
        phases["phase2"] = (2, PhaseSettings(steps=1, lr=1e-3, train_decoder=True, prompt_replay=1.0), phase2_loss)
    seconds = {}
    for name, (phase, settings, loss_fn) in phases.items():
        params = set_trainable(model, phase, phase == 1, settings)

        def step(params=params, settings=settings, loss_fn=loss_fn):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model, images, target, valid, settings, torch.Generator().manual_seed(1))
            loss.backward()
            for p in params:
                p.grad = None

        seconds[name] = timed(step, device, repeats)
    model.eval()
    x = model.preprocess(images)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        seconds["inference"] = timed(lambda: model.predict_latent(x), device, repeats)
    return model, seconds
