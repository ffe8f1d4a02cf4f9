"""Do LP-SAM's predicted scores mean something? Predicted quality vs true IoU on held-out frames.

``maskgen run`` keeps each mask's predicted quality (SAM's IoU head on the latent tokens,
clamped to [0, 1]) as its score in the store, and ranks and filters masks by it. Here every
(held-out frame, anatomy class its dataset labels) gives one pair: the score LP-SAM predicts
for the class's latent mask and the IoU of that mask (thresholded at probability 0.5) with the
ground truth, exactly the quantity the IoU head is trained to predict (1 when both are empty,
0 for a mask where the frame has none of the class). How well the scores *rank* the masks is
Spearman's rank correlation; a scatter plot shows the pairs per class. Next to it, the simplest
baseline that needs no IoU head: the mask's mean foreground probability (0 for an empty mask).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from maskgen.common.devices import autocast_dtype
from maskgen.lpsam.data import PairSet
from maskgen.lpsam.losses import mask_iou
from maskgen.lpsam.model import LPSAM

FIGURE_NAME = "score_vs_iou.png"


@torch.inference_mode()
def score_iou_pairs(model: LPSAM, pairs: PairSet, device: torch.device, batch_size: int = 16,
                    with_baseline: bool = False) -> tuple[np.ndarray, ...]:
    """Predicted scores (P,) float, true IoU (P,) float and class index (P,) int of every valid
    (held-out frame, class) pair, in frame order; with ``with_baseline`` also the baseline
    score (P,) float: the mean probability inside the thresholded mask, 0 when it is empty."""
    idx = pairs.indices(held_out=True)
    dtype = autocast_dtype(device)
    scores, ious, classes, confidence = [], [], [], []
    for start in range(0, len(idx), batch_size):
        sel = idx[start:start + batch_size]
        target, valid = pairs.targets(sel)                                  # (B, T, S, S), (B, T)
        x = model.preprocess(pairs.images[sel].to(device))
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            logits, iou = model.predict_latent(x)                           # (B, T, m, m), (B, T)
        logits = model.upscale(logits.float()).cpu()
        b_idx, t_idx = torch.nonzero(valid, as_tuple=True)
        scores.append(iou.float().clamp(0, 1).cpu()[b_idx, t_idx])
        ious.append(mask_iou(logits[b_idx, t_idx], target[b_idx, t_idx]))
        classes.append(t_idx)
        picked = logits[b_idx, t_idx].flatten(1)
        inside = (picked > 0).float()
        confidence.append((torch.sigmoid(picked) * inside).sum(1) / inside.sum(1).clamp(min=1))
    if not scores:
        empty = (np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return (*empty, np.zeros(0, np.float32)) if with_baseline else empty
    out = (torch.cat(scores).numpy(), torch.cat(ious).numpy().astype(np.float32), torch.cat(classes).numpy())
    return (*out, torch.cat(confidence).numpy()) if with_baseline else out


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of (P,) arrays (ties get their mean rank); None when it is
    undefined (fewer than 3 pairs, or one side constant)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return round(float(spearmanr(a, b).statistic), 4)


def score_report(scores: np.ndarray, ious: np.ndarray, classes: np.ndarray, names: list[str],
                 baseline: np.ndarray | None = None) -> dict:
    """Spearman overall and per class, with pair counts and the mean score / IoU (and the
    baseline score's Spearman, ``baseline_spearman``, when given)."""
    per_class = {}
    for t, name in enumerate(names):
        sel = classes == t
        per_class[name] = {"pairs": int(sel.sum()), "spearman": spearman(scores[sel], ious[sel]),
                           "mean_score": _mean(scores[sel]), "mean_iou": _mean(ious[sel])}
        if baseline is not None:
            per_class[name]["baseline_spearman"] = spearman(baseline[sel], ious[sel])
    report = {"pairs": len(scores), "spearman": spearman(scores, ious), "mean_score": _mean(scores),
              "mean_iou": _mean(ious), "per_class": per_class, "figure": FIGURE_NAME}
    if baseline is not None:
        report["baseline"] = "mean foreground probability of the mask"
        report["baseline_spearman"] = spearman(baseline, ious)
    return report


def _mean(x: np.ndarray) -> float | None:
    return round(float(x.mean()), 4) if len(x) else None


def plot_score_vs_iou(path: str | Path, scores: np.ndarray, ious: np.ndarray, classes: np.ndarray,
                      names: list[str], rho: float | None) -> Path:
    """Scatter of predicted score (x) against true IoU (y), one colour per class, the diagonal
    for reference; written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maskgen.common.files import atomic_path

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for t, name in enumerate(names):
        sel = classes == t
        if sel.any():
            ax.scatter(scores[sel], ious[sel], s=14, alpha=0.7, label=f"{name} ({int(sel.sum())})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="predicted score (IoU head)",
           ylabel="true IoU with the ground truth",
           title=f"held-out frames: Spearman {'n/a' if rho is None else f'{rho:.2f}'} ({len(scores)} pairs)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def evaluate_scores(model: LPSAM, pairs: PairSet, device: torch.device, out: str | Path) -> dict:
    """``score_report`` of the held-out pairs (with the baseline), the scatter plot written to
    OUT/score_vs_iou.png."""
    names = [c.name for c in pairs.classes]
    scores, ious, classes, baseline = score_iou_pairs(model, pairs, device, with_baseline=True)
    report = score_report(scores, ious, classes, names, baseline)
    plot_score_vs_iou(Path(out) / FIGURE_NAME, scores, ious, classes, names, report["spearman"])
    return report
