"""Mask quality of LP-SAM on held-out pairs: Dice and IoU per anatomy class.

``latent`` uses the latent prompts (what ``maskgen run`` does: no prompt from a person);
``box`` prompts SAM's decoder with the ground-truth box (an upper bound for phase 1).
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
from maskgen.lpsam.prompts import mask_boxes


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
def heldout_batches(model: LPSAM, pairs: PairSet, mode: str, device: torch.device, batch_size: int = 16):
    """Yield (binary predictions (B, T, S, S), targets (B, T, S, S) bool, validity (B, T)) per batch
    of held-out frames (on the CPU)."""
    if mode not in ("latent", "box"):
        raise ValueError(f"evaluation mode {mode!r} is not 'latent' or 'box'")
    idx = pairs.indices(held_out=True)
    dtype = autocast_dtype(device)
    for start in range(0, len(idx), batch_size):
        sel = idx[start:start + batch_size]
        target, valid = pairs.targets(sel)
        x = model.preprocess(pairs.images[sel].to(device))
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            if mode == "latent":
                logits, _ = model.predict_latent(x)
            else:
                logits = _box_logits(model, x, target.to(device), valid.to(device))
        yield (model.upscale(logits.float()) > 0).cpu(), target > 0.5, valid


def _box_logits(model: LPSAM, x, target, valid) -> torch.Tensor:
    """(B, T, m, m) logits with the GT box as prompt (classes without GT stay at -inf-ish)."""
    b, t = valid.shape
    logits = torch.full((b, t, model.config.mask_size, model.config.mask_size), -20.0, device=x.device)
    present = valid & (target.flatten(2).amax(-1) > 0)
    b_idx, t_idx = torch.nonzero(present, as_tuple=True)
    if len(b_idx):
        embeddings = model.encode(x)
        boxes = mask_boxes(target[b_idx, t_idx] > 0.5)
        sparse, _ = model.prompt_encoder(points=None, boxes=boxes, masks=None)
        out, _ = model.decode(embeddings, sparse, detail=model.detail_features(x), rows=b_idx)
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
    per = {n: {"dice": [], "iou": [], "precision": [], "recall": [], "fp": []} for n in names}
    for pred, target, valid in batches:
        for t, name in enumerate(names):
            rows = valid[:, t]
            p, g = pred[rows, t], target[rows, t]
            has_gt = g.flatten(1).any(1)
            values = (*overlap_scores(p[has_gt], g[has_gt]), *precision_recall(p[has_gt], g[has_gt]),
                      p[~has_gt].flatten(1).any(1).float())
            for key, v in zip(per[name], values, strict=True):
                per[name][key].append(v)
    report = {}
    for name in names:
        d, i, pr, rc, f = (torch.cat(v) if v else torch.zeros(0) for v in per[name].values())
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
    """{"latent": per-class report, "box": per-class report} on the held-out frames.

    ``observe``: called with every latent-prompt batch (predictions, targets, validity) as it is
    scored, so a caller can keep what it needs (e.g. ``figures.ExamplePicker``) without a second pass.
    """
    names = [c.name for c in pairs.classes]

    def latent():
        for batch in heldout_batches(model, pairs, "latent", device, batch_size):
            if observe is not None:
                observe(*batch)
            yield batch

    return {"latent": class_report(latent(), names),
            "box": class_report(heldout_batches(model, pairs, "box", device, batch_size), names)}
