"""The pre-training loop (``pretrain run``): reads top to bottom.

Every random draw of step t comes from a generator seeded by (seed, t, rank), the data
position is a function of t, and the schedules are functions of t: a checkpoint's step is
enough for a resumed run to end with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from maskgen.common.devices import (
    autocast_dtype,
    prefers_channels_last,
    rank_device,
    syncs_batchnorm,
)
from maskgen.common.files import sha256_file
from maskgen.common.provenance import write_run_info
from maskgen.common.schedules import warmup_cosine
from maskgen.store import MANIFEST_NAME, open_store, unpack_masks_torch
from pretrain import distributed as dist
from pretrain.checkpoint import (
    CHECKPOINT_NAME,
    describe_checkpoint,
    load_checkpoint,
    resume_changes,
    save_checkpoint,
)
from pretrain.export import write_backbone
from pretrain.figures import CURVES_NAME, VIEW_PAIR_NAME, draw_curves, draw_view_pair
from pretrain.jsonl import keep_until
from pretrain.loader import FrameStream, LoaderConfig
from pretrain.model import (
    ModelConfig,
    build_online,
    build_target,
    ema_update,
    with_synced_batchnorm,
)
from pretrain.monitor import BackboneDrift
from pretrain.optim import OptimConfig, build_optimizer
from pretrain.probe import OnlineProbe, ProbeConfig, load_probes
from pretrain.schedules import ema_momentum, scaled_lr
from pretrain.step import ObjectiveConfig, compute_loss, prepare_inputs

log = logging.getLogger(__name__)
METRICS_NAME = "metrics.jsonl"
BACKBONE_NAME = "backbone.safetensors"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the run stopped and kept its last good checkpoint."""


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    device: str = "auto"
    compile: bool = False
    sync_bn: bool = True
    checkpoint_every: int = 200
    max_steps: int | None = None
    log_every: int = 1
    probe: ProbeConfig | None = None

    def __post_init__(self):
        if self.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}")
        if self.model.scales != self.objective.scales:
            raise ValueError("model and objective must use the same number of scales")


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of every random draw of one step on one rank."""
    state = int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def store_identity(store) -> dict:
    """What identifies the input store: path, manifest sha256, attributes (incl. LP-SAM sha256)."""
    attrs = store.attrs
    return {"path": str(store.path.resolve()), "manifest_sha256": sha256_file(store.path / MANIFEST_NAME),
            "attrs": attrs, "frames": len(store), "usable_frames": int(len(store.usable_rows())),
            "lpsam_checkpoint_sha256": attrs.get("lpsam_checkpoint_sha256")}


def batch_to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (B, S, S) uint8 and masks (B, K, S, S) bool on the device (unpacked there)."""
    frames = batch["images"].to(device, non_blocking=True)
    masks = unpack_masks_torch(batch["masks"].to(device, non_blocking=True))
    slots = torch.arange(masks.shape[1], device=device)
    valid = slots[None] < batch["counts"].to(device)[:, None]
    return frames, masks & valid[:, :, None, None]


def plan_epochs(stream: FrameStream, epochs: int) -> list[int]:
    """Steps of every epoch (computed from row indices; ranks agree)."""
    return [stream.batches_in_epoch(e) for e in range(epochs)]


def run(store_path: str | Path, out_dir: str | Path, cfg: RunConfig, seed: int = 0, resume: bool = False,
        on_step: Callable[[int], None] | None = None, on_start: Callable[[torch.device], None] | None = None,
        lower_lr: bool = False) -> Path:
    """Pre-train on STORE, writing OUT_DIR/{run.json, checkpoint.pt, metrics.jsonl,
    backbone.safetensors(+.json)}. Returns OUT_DIR. ``on_step(step)`` runs after each step;
    ``on_start(device)`` once on the main rank, when the inputs are checked and OUT_DIR exists.
    ``lower_lr``: a resume may lower ``cfg.optim.base_lr`` (``--lr`` given on ``--resume``)."""
    out_dir = Path(out_dir)
    device = rank_device(cfg.device)  # LOCAL_RANK -> its own GPU, set before the process group
    dist.init_from_env(device.type)
    rank, world = dist.rank(), dist.world_size()
    store = open_store(store_path)
    stream = FrameStream(store, dataclasses.replace(cfg.loader, seed=seed), rank, world, device)
    steps_per_epoch = plan_epochs(stream, cfg.optim.epochs)
    total = sum(steps_per_epoch)
    if total == 0:
        raise ValueError(f"--batch-size {cfg.loader.batch_size} x {world} rank(s) exceeds the "
                         f"{len(stream.rows)} usable frames of {store_path}: no full batch")
    warmup = round(cfg.optim.warmup_epochs * total / cfg.optim.epochs)
    if warmup >= total and dist.is_main():
        log.warning("--warmup-epochs %s >= --epochs %s: the whole run is warm-up", cfg.optim.warmup_epochs,
                    cfg.optim.epochs)
    base_lr = scaled_lr(cfg.optim.base_lr, cfg.loader.batch_size * world)

    online = build_online(cfg.model, seed)  # identical initial weights on every rank
    if cfg.sync_bn and dist.is_distributed() and syncs_batchnorm(device):
        online = with_synced_batchnorm(online)
    online = online.to(device)
    target = build_target(online).to(device)
    if prefers_channels_last(device):
        online, target = online.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(online, cfg.optim, base_lr)
    config = dataclasses.asdict(cfg)
    ckpt_path = out_dir / CHECKPOINT_NAME
    start, resumed = 0, {}
    if resume:
        state = load_checkpoint(ckpt_path, online=online, target=target, optimizer=optimizer)
        saved, resumed["changes"] = resume_changes(state["config"], config, lower_lr)  # e.g. a lower --lr
        _check_same_run(saved, config)
        _check_same_world(state["world_size"], world)
        start = resumed["from_step"] = state["step"]
        log.info("resumed from %s at step %d", ckpt_path, start)
    elif ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose a new --out")
    if dist.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(out_dir, config, seed, store=store_identity(store),
                       lpsam_checkpoint_sha256=store.attrs.get("lpsam_checkpoint_sha256"),
                       steps=total, steps_per_epoch=steps_per_epoch, world_size=world, device=str(device),
                       resumed=resumed or None)
        if on_start is not None:
            on_start(device)
    model = online
    if dist.is_distributed():
        # with fewer than 4 scales the FPN's finest outputs get no gradient
        model = dist.wrap_ddp(online, device, find_unused_parameters=cfg.model.scales < 4)
    if cfg.compile:
        model = torch.compile(model)

    last = total if cfg.max_steps is None else min(total, cfg.max_steps)
    metrics = MetricsWriter(out_dir / METRICS_NAME, start) if dist.is_main() else None
    watch = Watch(cfg, seed, device, online, metrics) if metrics is not None else None
    if watch is not None:
        log.info("pre-training on %s: %d steps (%d per epoch), global batch %d, %s lr %.4g (recipe %s)",
                 device, total, steps_per_epoch[0], cfg.loader.batch_size * world, cfg.optim.optimizer,
                 base_lr, cfg.optim.recipe)
        if start == 0:
            watch.at_step(0, force_probe=True)
    bar = tqdm(total=last, initial=start, desc="pretrain", unit="step", disable=not dist.is_main())
    step = start
    for epoch, batch_no in _epoch_starts(steps_per_epoch, start):
        if step >= last:
            break
        stream.set_position(epoch, batch_no)
        loader = DataLoader(stream, batch_size=None, num_workers=stream.workers,
                            pin_memory=device.type == "cuda")
        for batch in loader:
            if step >= last or batch_no >= steps_per_epoch[epoch]:
                break
            tic = time.perf_counter()
            frames, masks = batch_to_device(batch, device)
            lr = warmup_cosine(step, base_lr, warmup, total)
            momentum = ema_momentum(step, cfg.optim.ema_base, total)
            value, parts = train_step(model, online, target, optimizer, frames, masks, cfg.objective,
                                      step_generator(seed, step, rank, device), lr, momentum)
            if not np.isfinite(value):
                raise NonFiniteLossError(
                    f"loss is {value} at step {step} (epoch {epoch}); stopped without saving. "
                    f"Last good checkpoint: {describe_checkpoint(ckpt_path)}. "
                    "Resume it with a lower --lr (--resume --lr X) or check the store (maskgen verify).")
            step, batch_no = step + 1, batch_no + 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", epoch=epoch)
            if metrics is not None and (step % cfg.log_every == 0 or step == last):
                pairs = frames.shape[0] * world / (time.perf_counter() - tic)
                metrics.write({"step": step, "epoch": epoch, "loss": value, "lr": lr, "ema_momentum": momentum,
                               "pairs_per_s": pairs, **{k: float(v) for k, v in parts.items()},
                               **watch.drift(online.encoder.body)})
            if watch is not None:
                if step == 1:
                    watch.view_pair(out_dir / VIEW_PAIR_NAME, frames, masks, seed)
                watch.at_step(step, force_probe=step == last)
            if step % cfg.checkpoint_every == 0 or step == last:
                _checkpoint(ckpt_path, online, target, optimizer, step, config, world)
                if watch is not None:
                    watch.curves(out_dir / CURVES_NAME, out_dir.name)
            if on_step is not None:
                on_step(step)
    bar.close()
    if metrics is not None:
        metrics.close()
    if dist.is_main():
        write_backbone(out_dir / BACKBONE_NAME, online.state_dict(), out_dir, step, config)
    dist.barrier()
    return out_dir


def train_step(model, online, target, optimizer, frames: torch.Tensor, masks: torch.Tensor,
               objective: ObjectiveConfig, gen: torch.Generator, lr: float, momentum: float
               ) -> tuple[float, dict[str, torch.Tensor]]:
    """One optimisation step on frames (B, S, S) uint8 and masks (B, K, S, S) bool.

    ``model`` is the online network as called (maybe DDP/compiled), ``online`` the bare module
    (for the EMA). Returns the loss (mean over ranks) and its parts; when the loss is not
    finite nothing is updated and the caller decides.
    """
    device = frames.device
    for group in optimizer.param_groups:
        group["lr"] = lr
    inputs = prepare_inputs(frames, masks, objective, gen)
    if prefers_channels_last(device):
        inputs.images = inputs.images.contiguous(memory_format=torch.channels_last)
        inputs.target_images = inputs.target_images.contiguous(memory_format=torch.channels_last)
    amp = autocast_dtype(device)
    with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
        loss, parts = compute_loss(model, target, inputs, objective)
    value = dist.mean_over_ranks(loss.detach())  # every rank takes the same decision
    if not np.isfinite(value):
        return value, parts
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema_update(target, online, momentum)
    return value, parts


RESUMABLE_CHANGES = ("device", "compile", "checkpoint_every", "max_steps", "log_every", "probe")


def _check_same_run(saved: dict, current: dict) -> None:
    """A resumed run must continue the same optimisation: only run-control options may change."""
    diff = sorted(k for k in set(saved) | set(current)
                  if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if diff:
        raise ValueError(f"--resume: the checkpoint was made with other settings for {', '.join(diff)}; "
                         "resume with the original options or start a new --out")


def _check_same_world(saved: int | None, current: int) -> None:
    """The data partition per rank and the learning-rate scaling depend on the number of ranks,
    so an exact resume needs the same number."""
    if saved is not None and saved != current:
        raise ValueError(f"--resume: the checkpoint was made by {saved} rank(s), this run has {current}; "
                         f"resume with {saved} (torchrun --nproc_per_node {saved}) or start a new --out")


def _checkpoint(path, online, target, optimizer, step, config, world) -> None:
    if dist.is_main():
        save_checkpoint(path, online=online, target=target, optimizer=optimizer, step=step, config=config,
                        world_size=world)
    dist.barrier()


def _epoch_starts(steps_per_epoch: list[int], start: int):
    """(epoch, batch in epoch) for the resumed position, then (e, 0) for the later epochs."""
    done = 0
    for epoch, n in enumerate(steps_per_epoch):
        if start < done + n:
            yield epoch, max(start - done, 0)
        done += n


class Watch:
    """Rank 0's read-outs besides the loss: backbone drift (every logged step), the online
    probe (step 0, every ``probe.every`` steps and the last), curves.png and view_pair.png."""

    def __init__(self, cfg: RunConfig, seed: int, device: torch.device, online, metrics: MetricsWriter):
        self.cfg, self.metrics, self.online = cfg, metrics, online
        with torch.random.fork_rng(devices=[]):  # the global RNG of a resumed run stays untouched
            initial = build_online(cfg.model, seed).encoder.body  # step 0, also after a resume
        self.drift = BackboneDrift(initial.to(device))
        self.probe = None
        if cfg.probe is not None:
            probes = load_probes(cfg.probe, cfg.objective.resolution)
            self.probe = OnlineProbe(probes, cfg.probe, device)
            for p in probes:
                log.info("online probe: %s, %d frames in %d groups (%s)", p.name, len(p.images),
                         len(set(p.groups.tolist())),
                         "dense ridge probe, group folds" if p.dense else "leave-one-group-out kNN")
            self.references = self.probe.references()
            log.info("probe references (step-independent): %s",
                     ", ".join(f"{k} {v:.3f}" for k, v in self.references.items()))

    def at_step(self, step: int, force_probe: bool = False) -> None:
        if self.probe is None or not (force_probe or step % self.cfg.probe.every == 0):
            return
        result = self.probe(self.online.encoder.body)
        self.metrics.write({"step": step, **result, **self.references})
        log.info("step %d: probe %s", step, ", ".join(f"{k} {v:.3f}" for k, v in result.items()))

    def view_pair(self, path: Path, frames: torch.Tensor, masks: torch.Tensor, seed: int) -> None:
        from pretrain.step import source_masks

        gen = step_generator(seed, 0, 0, frames.device)
        draw_view_pair(frames, source_masks(frames, masks, self.cfg.objective.mask_source), path,
                       self.cfg.objective.resolution, gen, self.cfg.objective.views)

    def curves(self, path: Path, title: str) -> None:
        draw_curves(self.metrics.path, path, title)


class MetricsWriter:
    """JSON lines, one per logged step; a resumed run drops lines past its checkpoint's step.
    Also writes TensorBoard scalars when tensorboard is installed."""

    def __init__(self, path: Path, start: int):
        self.path = path
        if path.exists():
            keep_until(path, start)  # a torn last line (killed, disk full) is dropped
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step":
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()  # flushes the event file
