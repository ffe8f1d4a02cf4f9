"""Mask quality of LP-SAM on held-out pairs: Dice and IoU per anatomy class.

``latent`` uses the latent prompts (what ``maskgen run`` does: no prompt from a person);
``point`` prompts SAM's decoder with one click at the structure's innermost pixel (what a person
would give: where it is, not how far it reaches); ``box`` with the ground-truth box (where it is and
how far it reaches: an upper bound for phase 1). A latent token at the click's Dice finds its
structure as well as a person pointing at it; the gap from the click to the box is the extent the
decoder cannot draw from a point.
Per (frame, class) with a non-empty ground truth: Dice = 2|P n G| / (|P| + |G|), IoU =
|P n G| / |P u G| on the S x S masks thresholded at probability 0.5, with precision |P n G| / |P|
(over frames with a non-empty prediction) and recall |P n G| / |G|: precision well under recall
means masks larger than their structure, the reverse masks that miss part of it. Frames of the class's
dataset whose ground truth lacks the class are counted apart (``empty_gt``), with how often
the prediction was non-empty there (``false_positive``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from maskgen.common.devices import autocast_dtype
from maskgen.lpsam.data import PairSet
from maskgen.lpsam.model import LPSAM
from maskgen.lpsam.prompts import click_prompts, mask_boxes

MODES = ("latent", "point", "box")


def overlap_scores(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU of binary masks (N, H, W) -> (N,), (N,); 1 when both are empty."""
    pred, gt = pred.bool().flatten(1), gt.bool().flatten(1)
    inter = (pred & gt).sum(1).float()
    total = pred.sum(1).float() + gt.sum(1).float()
    union = (pred | gt).sum(1).float()
    dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return dice, iou


@torch.inference_mode()
def heldout_predictions(model: LPSAM, pairs: PairSet, modes: tuple[str, ...], device: torch.device,
                        batch_size: int = 16, frames: torch.Tensor | None = None):
    """Yield ({mode: binary predictions (B, T, S, S)}, targets (B, T, S, S) bool, validity (B, T)) per
    batch of held-out frames (on the CPU): each frame is encoded once and decoded with the prompts of
    every mode in ``modes``. ``frames``: (F,) indices of other frames to score instead (as they
    are, no augmentation), e.g. ``training_sample``."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"evaluation mode(s) {unknown} not among {MODES}")
    idx = pairs.indices(held_out=True) if frames is None else frames
    dtype = autocast_dtype(device)
    for start in range(0, len(idx), batch_size):
        sel = idx[start:start + batch_size]
        target, valid = pairs.targets(sel)
        x = model.preprocess(pairs.images[sel].to(device))
        on_device = target.to(device), valid.to(device)
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            embeddings, detail = model.encode(x), model.detail_features(x)
            logits = {mode: model.predict_latent(x, embeddings, detail=detail)[0] if mode == "latent"
                      else _prompted_logits(model, embeddings, detail, *on_device, mode) for mode in modes}
        yield {mode: (model.upscale(out.float()) > 0).cpu() for mode, out in logits.items()}, target > 0.5, valid


def heldout_batches(model: LPSAM, pairs: PairSet, mode: str, device: torch.device, batch_size: int = 16,
                    frames: torch.Tensor | None = None):
    """Yield (binary predictions (B, T, S, S), targets (B, T, S, S) bool, validity (B, T)) per batch
    of held-out frames (or of ``frames``, as ``heldout_predictions``) on the CPU, with the prompts of ``mode``."""
    for preds, target, valid in heldout_predictions(model, pairs, (mode,), device, batch_size, frames):
        yield preds[mode], target, valid


def _prompted_logits(model: LPSAM, embeddings, detail, target, valid, mode: str) -> torch.Tensor:
    """(B, T, m, m) logits with a ground-truth prompt per present class, its box or one click at its
    innermost pixel (``mode``), decoded from the frames' embeddings (B, C, h, w) and detail features
    (or None); classes without ground truth stay at -inf-ish."""
    b, t = valid.shape
    logits = torch.full((b, t, model.config.mask_size, model.config.mask_size), -20.0, device=embeddings.device)
    present = valid & (target.flatten(2).amax(-1) > 0)
    b_idx, t_idx = torch.nonzero(present, as_tuple=True)
    if len(b_idx):
        masks = target[b_idx, t_idx]
        if mode == "box":
            sparse, _ = model.prompt_encoder(points=None, boxes=mask_boxes(masks > 0.5), masks=None)
        else:
            sparse = click_prompts(model.prompt_encoder, masks)
        out, _ = model.decode(embeddings, sparse, detail=detail, rows=b_idx)
        logits[b_idx, t_idx] = out[:, 0].float()
    return logits


def precision_recall(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mask precision and recall of binary masks (N, H, W) with non-empty ``gt`` -> (N,), (N,);
    precision is NaN where the prediction is empty (it has no pixel to be right or wrong about)."""
    pred, gt = pred.bool().flatten(1), gt.bool().flatten(1)
    inter = (pred & gt).sum(1).float()
    area = pred.sum(1).float()
    precision = torch.where(area > 0, inter / area.clamp(min=1), torch.full_like(area, float("nan")))
    return precision, inter / gt.sum(1).float().clamp(min=1)


def class_report(batches, names: list[str]) -> dict:
    """Per-class Dice/IoU summary (mean, std, median over frames), precision and recall (means)
    of ``heldout_batches``."""
    scores = ClassScores(names)
    for batch in batches:
        scores.add(*batch)
    return scores.report()


class ClassScores:
    """Per-frame scores of each anatomy class, gathered batch by batch (``add``) and summarised by
    ``report`` (what ``class_report`` returns). Scores are kept as Python floats, not one small
    tensor per batch, which would sit between the pass's large transient tensors and fragment the
    heap (the evaluation's memory grew with the number of batches)."""

    def __init__(self, names: list[str]):
        self.names = names
        self.per = {n: {"dice": [], "iou": [], "precision": [], "recall": [], "fp": []} for n in names}

    def add(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """One batch: binary predictions and targets (B, T, S, S), validity (B, T)."""
        for t, name in enumerate(self.names):
            rows = valid[:, t]
            p, g = pred[rows, t], target[rows, t]
            has_gt = g.flatten(1).any(1)
            values = (*overlap_scores(p[has_gt], g[has_gt]), *precision_recall(p[has_gt], g[has_gt]),
                      p[~has_gt].flatten(1).any(1).float())
            for key, v in zip(self.per[name], values, strict=True):
                self.per[name][key].extend(v.tolist())

    def report(self) -> dict:
        report = {}
        for name in self.names:
            d, i, pr, rc, f = (torch.tensor(v, dtype=torch.float32) for v in self.per[name].values())
            pr = pr[~pr.isnan()]
            report[name] = {
                "frames": len(d),
                "dice_mean": _stat(d, np.mean), "dice_std": _stat(d, np.std), "dice_median": _stat(d, np.median),
                "iou_mean": _stat(i, np.mean), "iou_std": _stat(i, np.std),
                "precision_mean": _stat(pr, np.mean), "recall_mean": _stat(rc, np.mean),
                "empty_gt": len(f), "false_positive_rate": _stat(f, np.mean),
            }
        return report


def _stat(values: torch.Tensor, fn) -> float | None:
    return round(float(fn(values.numpy())), 4) if len(values) else None


def evaluate(model: LPSAM, pairs: PairSet, device: torch.device, batch_size: int = 16,
             observe=None) -> dict:
    """{"latent", "point", "box"}: per-class reports (``class_report``) on the held-out frames, in one
    pass that encodes each frame once.

    ``observe``: called with every latent-prompt batch (predictions, targets, validity) as it is
    scored, so a caller can keep what it needs (e.g. ``figures.ExamplePicker``) without a second pass.
    """
    names = [c.name for c in pairs.classes]
    scores = {mode: ClassScores(names) for mode in MODES}
    for preds, target, valid in heldout_predictions(model, pairs, MODES, device, batch_size):
        if observe is not None:
            observe(preds["latent"], target, valid)
        for mode in MODES:
            scores[mode].add(preds[mode], target, valid)
    return {mode: s.report() for mode, s in scores.items()}


# training frames per dataset that ``training_fit`` scores (a seeded sample where there are more)
FIT_FRAMES_PER_DATASET = 200


def training_sample(pairs: PairSet, per_dataset: int = FIT_FRAMES_PER_DATASET, seed: int = 0) -> torch.Tensor:
    """(F,) sorted indices of at most ``per_dataset`` training (not held-out) frames of every
    dataset, drawn with ``seed``: the same frames for every adaptation on the same split."""
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for i in range(len(pairs.datasets)):
        idx = torch.nonzero((pairs.dataset_index == i) & ~pairs.held_out).flatten()
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:per_dataset]])
    return torch.cat(picked).sort().values


def training_fit(model: LPSAM, pairs: PairSet, device: torch.device, batch_size: int = 16,
                 per_dataset: int = FIT_FRAMES_PER_DATASET) -> dict:
    """Per-class latent-prompt report (``class_report``'s fields) on a sample of the frames the
    adaptation trained on (``training_sample``), as they are, without augmentation: set beside the
    held-out report it tells a class that is memorised (far better on its training frames) from
    one that is not learnt (low on both)."""
    batches = heldout_batches(model, pairs, "latent", device, batch_size, training_sample(pairs, per_dataset))
    return class_report(batches, [c.name for c in pairs.classes])
