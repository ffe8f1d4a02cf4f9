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
def heldout_batches(model: LPSAM, pairs: PairSet, mode: str, device: torch.device, batch_size: int = 16):
    """Yield (binary predictions (B, T, S, S), targets (B, T, S, S) bool, validity (B, T)) per batch
    of held-out frames (on the CPU)."""
    if mode not in MODES:
        raise ValueError(f"evaluation mode {mode!r} is not one of {MODES}")
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
                logits = _prompted_logits(model, x, target.to(device), valid.to(device), mode)
        yield (model.upscale(logits.float()) > 0).cpu(), target > 0.5, valid


def _prompted_logits(model: LPSAM, x, target, valid, mode: str) -> torch.Tensor:
    """(B, T, m, m) logits with a ground-truth prompt per present class, its box or one click at its
    innermost pixel (``mode``); classes without ground truth stay at -inf-ish."""
    b, t = valid.shape
    logits = torch.full((b, t, model.config.mask_size, model.config.mask_size), -20.0, device=x.device)
    present = valid & (target.flatten(2).amax(-1) > 0)
    b_idx, t_idx = torch.nonzero(present, as_tuple=True)
    if len(b_idx):
        embeddings = model.encode(x)
        masks = target[b_idx, t_idx]
        if mode == "box":
            sparse, _ = model.prompt_encoder(points=None, boxes=mask_boxes(masks > 0.5), masks=None)
        else:
            sparse = click_prompts(model.prompt_encoder, masks)
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
    """{"latent", "point", "box"}: per-class reports (``class_report``) on the held-out frames.

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
            **{mode: class_report(heldout_batches(model, pairs, mode, device, batch_size), names)
               for mode in ("point", "box")}}
