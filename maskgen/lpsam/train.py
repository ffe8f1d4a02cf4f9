"""The two adaptation phases, each a short loop that reads top to bottom.

Phase 1 trains the encoder adapter and convolutional branch (and, for a model without SAM
weights such as ``tiny`` from random init, the whole SAM as well) with prompts from the ground
truth. Phase 2 freezes the encoder and adapter and trains the latent prompt engine (and, with
``train_decoder``, the mask decoder, with phase 1's GT prompts replayed at ``prompt_replay``):
one latent token per anatomy class, the loss only on the classes the frame's dataset labels
(partial labels). SAM's IoU head learns in both phases wherever its loss is used.

Batches and prompts are drawn from generators seeded by (seed, phase, step), and the learning
rate is a pure function of the step, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from maskgen.common.devices import autocast_dtype
from maskgen.common.schedules import warmup_cosine
from maskgen.lpsam.artifacts import load_phase_state, save_phase_state
from maskgen.lpsam.augment import NO_AUGMENT, AugmentConfig, copy_paste, domain_randomise
from maskgen.lpsam.data import PairSet
from maskgen.lpsam.losses import DEFAULT_DICE_WEIGHT, segmentation_loss
from maskgen.lpsam.model import LPSAM
from maskgen.lpsam.prompts import PROMPT_MODES, gt_prompts

log = logging.getLogger(__name__)

LR_FLOOR = 0.01  # each phase's cosine ends at 1% of its learning rate


@dataclass(frozen=True)
class PhaseSettings:
    """Optimisation of one phase: AdamW, linear warm-up then cosine decay to 1% of ``lr``.

    ``balance_datasets``: draw each frame's dataset uniformly, then a frame of it, so a small
    dataset (DDTI, 637 frames) is not drowned by a large one (CAMUS, 57k frames).
    ``augment``: copy-paste and domain randomisation of every training batch
    (``maskgen.lpsam.augment``; off by default, ``NO_AUGMENT``).
    ``iou_weight``: weight of the mask-quality regression; SAM's IoU head is trained whenever
    it is > 0, and 0 drops the term and leaves the head as it is (see ``trainable_parts``).
    ``train_decoder`` (phase 2): also train SAM's whole mask decoder, as the authors' code does.
    ``prompt_replay`` (phase 2 with ``train_decoder``): weight of phase 1's loss (GT box/point
    prompts) on the same batch, added to the latent-prompt loss, so the decoder that learns to
    serve the latent tokens keeps following the prompts of the box and grid proposals.
    ``balanced_bce`` (phase 2): the BCE term weighs each mask's foreground and background
    half each (``losses.balanced_weights``).
    ``frame_weighted``: each frame's masks are averaged before the frames are, so every frame (and,
    with ``balance_datasets``, every dataset) pulls alike however many classes its dataset labels;
    otherwise every mask weighs the same, and a dataset with three classes (CAMUS) pulls three
    times as hard as one with one (DDTI's nodule).
    ``train_detail`` (phase 2): the decoder's detail branch (trained in phase 1 with the adapters)
    learns on in phase 2, with the mask decoder it feeds.
    """

    steps: int
    lr: float
    batch_size: int = 8
    weight_decay: float = 0.01
    warmup: int = 20
    dice_weight: float = DEFAULT_DICE_WEIGHT
    iou_weight: float = 1.0
    train_decoder: bool = False
    prompt_replay: float = 0.0
    balanced_bce: bool = False
    frame_weighted: bool = False
    train_detail: bool = False
    box_jitter: float = 0.1
    flip: bool = True
    balance_datasets: bool = True
    augment: AugmentConfig = NO_AUGMENT
    checkpoint_every: int = 50
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < (0 if name == "steps" else 1):
                raise ValueError(f"{name}={getattr(self, name)} is out of range")
        if self.lr <= 0:
            raise ValueError(f"learning rate {self.lr} must be positive")
        if self.prompt_replay < 0:
            raise ValueError(f"prompt replay weight {self.prompt_replay} must be >= 0")
        if self.prompt_replay > 0 and not self.train_decoder:
            raise ValueError("prompt replay trains the mask decoder on GT prompts: it needs train_decoder")

    def fingerprint(self, phase: int, extra: dict) -> str:
        fields = asdict(self)
        if self.augment.p <= 0 and self.augment.paste <= 0:  # no randomisation: the fingerprint it had
            fields.pop("augment")                                   # before randomisation existed
        elif self.augment.paste <= 0:  # likewise before copy-paste existed
            fields["augment"].pop("paste")
        for name in ("balanced_bce", "prompt_replay", "frame_weighted", "train_detail"):  # likewise, at their defaults
            if not fields[name]:
                fields.pop(name)
        blob = json.dumps({"phase": phase, **fields, **extra}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def step_generator(seed: int, phase: int, step: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, phase, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + phase * 100_003 + step)


def sample_frames(datasets: torch.Tensor, pool: torch.Tensor, batch_size: int, gen: torch.Generator,
                  balance: bool) -> torch.Tensor:
    """``batch_size`` frame indices from ``pool`` (datasets: the pool's dataset indices), uniform
    over frames, or over datasets first when ``balance``."""
    if not balance:
        return pool[torch.randint(len(pool), (batch_size,), generator=gen)]
    groups = [pool[datasets == d] for d in torch.unique(datasets)]
    which = torch.randint(len(groups), (batch_size,), generator=gen)
    u = torch.rand(batch_size, generator=gen)
    return torch.stack([groups[w][int(x * len(groups[w]))] for w, x in zip(which.tolist(), u.tolist(), strict=True)])


def draw_batch(pairs: PairSet, pool: torch.Tensor, batch_size: int, gen: torch.Generator, flip: bool,
               device: torch.device, balance: bool = False,
               augment: AugmentConfig | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames (B, S, S) uint8, targets (B, T, S, S) float and validity (B, T) bool on ``device``
    (with structures pasted between frames and domain-randomised by ``augment`` when given)."""
    idx = sample_frames(pairs.dataset_index[pool], pool, batch_size, gen, balance)
    images = pairs.images[idx]
    target, valid = pairs.targets(idx)
    if flip:
        mirrored = torch.rand(batch_size, generator=gen) < 0.5
        images = torch.where(mirrored[:, None, None], images.flip(-1), images)
        target = torch.where(mirrored[:, None, None, None], target.flip(-1), target)
    images, target, valid = images.to(device), target.to(device), valid.to(device)
    if augment is not None and augment.paste > 0:
        images, target, valid = copy_paste(images, target, valid, augment.paste, gen)
    if augment is not None and augment.p > 0:
        images, target = domain_randomise(images, target, augment, gen)
    return images, target, valid


def mean_loss(per_mask: torch.Tensor, frame: torch.Tensor, frames: int, frame_weighted: bool) -> torch.Tensor:
    """Mean of per-mask losses (N,), each mask of frame ``frame[i]`` in [0, frames): over masks, or,
    with ``frame_weighted``, over the frames that have a mask, each frame's masks averaged first."""
    if not frame_weighted:
        return per_mask.mean()
    count = torch.bincount(frame, minlength=frames).to(per_mask.dtype)
    return (per_mask / count[frame]).sum() / (count > 0).sum()


def prompted_loss(model: LPSAM, x, embeddings, detail, target, valid, settings: PhaseSettings,
                  gen) -> torch.Tensor | None:
    """Mean loss of one GT prompt (box, point or both, drawn for the batch) per (frame, present
    class); None if the batch holds no anatomy.

    Args:
        x: (B, 3, S, S) normalised frames; embeddings: (B, C, h, w); detail: the detail branch's
        features of ``x`` or None; target: (B, T, S, S); valid: (B, T).
    """
    present = valid & (target.flatten(2).amax(-1) > 0)
    b_idx, t_idx = torch.nonzero(present, as_tuple=True)
    if len(b_idx) == 0:
        return None
    masks = target[b_idx, t_idx]
    mode = PROMPT_MODES[int(torch.randint(len(PROMPT_MODES), (1,), generator=gen))]
    sparse = gt_prompts(model.prompt_encoder, masks, mode, gen, settings.box_jitter)
    logits, iou = model.decode(embeddings, sparse, detail=detail, rows=b_idx)
    per_mask = segmentation_loss(model.upscale(logits[:, 0]).float(), masks, iou[:, 0].float(),
                                 settings.dice_weight, settings.iou_weight)
    return mean_loss(per_mask, b_idx, len(target), settings.frame_weighted)


def phase1_loss(model: LPSAM, images, target, valid, settings: PhaseSettings, gen) -> torch.Tensor | None:
    """Loss of one phase-1 batch: one GT prompt per (frame, present class); None if no anatomy."""
    x = model.preprocess(images)
    return prompted_loss(model, x, model.encode(x), model.detail_features(x), target, valid, settings, gen)


def phase2_loss(model: LPSAM, images, target, valid, settings: PhaseSettings, gen) -> torch.Tensor | None:
    """Loss of one phase-2 batch: latent prompts, loss on the frame's own dataset classes only
    (+ ``settings.prompt_replay`` x the GT-prompt loss of phase 1 on the same frames)."""
    x = model.preprocess(images)
    with torch.no_grad():
        embeddings = model.encode(x)
    with torch.set_grad_enabled(settings.train_detail):
        detail = model.detail_features(x)
    logits, iou = model.predict_latent(x, embeddings, detail=detail)
    per_mask = segmentation_loss(model.upscale(logits).float().flatten(0, 1), target.flatten(0, 1),
                                 iou.float().flatten(), settings.dice_weight, settings.iou_weight,
                                 settings.balanced_bce)
    weight = valid.float()
    if settings.frame_weighted:  # each frame's masks sum to 1
        weight = weight / weight.sum(1, keepdim=True).clamp(min=1)
    weight = weight.flatten()
    loss = (per_mask * weight).sum() / weight.sum().clamp(min=1)
    if settings.prompt_replay > 0:
        replay = prompted_loss(model, x, embeddings, detail, target, valid, settings, gen)
        if replay is not None:
            loss = loss + settings.prompt_replay * replay
    return loss


def trainable_parts(model: LPSAM, phase: int, train_base: bool, settings: PhaseSettings) -> list[torch.nn.Module]:
    """What ``phase`` trains. Phase 1: the adapter (+ all of SAM when ``train_base``, a model
    without SAM weights); phase 2: the latent prompt engine (+ the mask decoder with
    ``settings.train_decoder``, + the detail branch with ``settings.train_detail``). In both,
    SAM's IoU head learns whenever its loss is used (``iou_weight`` > 0): a frozen head would
    pull the adapters and latent prompts toward SAM's notion of quality on prompts it never
    saw, and the store's scores would mean little.
    """
    if phase == 1:
        parts = [model.adapter] + ([model.image_encoder, model.prompt_encoder, model.mask_decoder] if train_base else [])
    else:
        parts = [model.lpe] + ([model.mask_decoder] if settings.train_decoder else [])
        if settings.train_detail:
            if model.adapter is None or model.adapter.detail is None:
                raise ValueError("train_detail: this model has no detail branch")
            parts.append(model.adapter.detail)
    if settings.iou_weight > 0 and not any(p is model.mask_decoder for p in parts):
        parts.append(model.mask_decoder.iou_prediction_head)
    return parts


def set_trainable(model: LPSAM, phase: int, train_base: bool,
                  settings: PhaseSettings | None = None) -> list[torch.nn.Parameter]:
    """Freeze everything except ``trainable_parts``; set train/eval modes; return the params."""
    model.requires_grad_(False)
    model.eval()
    for part in trainable_parts(model, phase, train_base, settings or PhaseSettings(steps=0, lr=1.0)):
        part.requires_grad_(True)
        part.train()
    return [p for p in model.parameters() if p.requires_grad]


def phase_trainable_counts(model: LPSAM, train_base: bool = False) -> dict[str, int]:
    """Trainable parameters of phase 1, phase 2 with a frozen decoder and phase 2 with
    ``train_decoder`` (the CLI's default; default loss weights); leaves ``model`` frozen in eval mode."""
    base = PhaseSettings(steps=0, lr=1.0)
    counts = {
        "phase1": set_trainable(model, 1, train_base, base),
        "phase2_frozen": set_trainable(model, 2, False, base),
        "phase2_decoder": set_trainable(model, 2, False, PhaseSettings(steps=0, lr=1.0, train_decoder=True)),
    }
    model.requires_grad_(False).eval()
    return {name: sum(p.numel() for p in params) for name, params in counts.items()}


def run_phase(model: LPSAM, pairs: PairSet, phase: int, settings: PhaseSettings, device: torch.device,
              checkpoint: Path, train_base: bool = False, fingerprint_extra: dict | None = None) -> dict:
    """Train one phase (resuming from ``checkpoint`` when present); returns its summary
    (``seconds``: training time summed over this run and the runs it resumed)."""
    params = set_trainable(model, phase, train_base, settings)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    fingerprint = settings.fingerprint(phase, fingerprint_extra or {})
    start, done, history, seconds = 0, False, [], 0.0
    if checkpoint.exists():
        start, done, history, seconds = load_phase_state(checkpoint, model, optimizer, fingerprint)
        log.info("phase %d: resuming at step %d/%d from %s", phase, start, settings.steps, checkpoint)
    summary = {"phase": phase, "trainable_params": sum(p.numel() for p in params), "steps": settings.steps}
    if done:
        return {**summary, "resumed_done": True, "loss_history": history, "seconds": round(seconds, 1)}
    started = time.perf_counter() - seconds
    pool = pairs.indices(held_out=False)
    loss_fn = phase1_loss if phase == 1 else phase2_loss
    dtype = autocast_dtype(device)
    window: list[float] = []
    bar = tqdm(range(start, settings.steps), desc=f"LP-SAM phase {phase}", unit="step",
               initial=start, total=settings.steps)
    for step in bar:
        gen = step_generator(settings.seed, phase, step)
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, settings.lr, settings.warmup, settings.steps, LR_FLOOR)
        batch = draw_batch(pairs, pool, settings.batch_size, gen, settings.flip, device, settings.balance_datasets,
                           settings.augment)
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            loss = loss_fn(model, *batch, settings, gen)
        if loss is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            window.append(loss.item())
            bar.set_postfix(loss=f"{sum(window[-20:]) / len(window[-20:]):.4f}")
        last = step + 1 == settings.steps
        if (step + 1) % settings.checkpoint_every == 0 or last:
            mean = sum(window) / max(1, len(window))
            history.append(round(mean, 5))
            window = []
            log.info("phase %d step %d/%d loss %.4f", phase, step + 1, settings.steps, mean)
            seconds = time.perf_counter() - started
            save_phase_state(checkpoint, model, optimizer, step + 1, last, fingerprint, history, seconds)
    if settings.steps == 0:
        save_phase_state(checkpoint, model, optimizer, 0, True, fingerprint, history)
    model.eval()
    return {**summary, "loss_history": history, "seconds": round(seconds, 1)}
