"""Downstream metrics, as fractions in [0, 1] (the report shows percent).

Classification: accuracy and macro F1 (unweighted mean of per-class F1 over the classes that
occur in the truth or the predictions, like scikit-learn's default).
Segmentation: PPV (precision), sensitivity (recall) and Dice computed per test frame and then
averaged over frames. A frame with an empty prediction scores PPV 0 (the truth is never empty:
frames without foreground are excluded from segmentation tasks).
"""

from __future__ import annotations

import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
SEGMENTATION_METRICS = ("ppv", "sensitivity", "dice")
SELECTION_METRIC = {"classification": "macro_f1", "segmentation": "dice"}


def classification_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """pred, true: (N,) int class ids -> {"accuracy", "macro_f1"}."""
    pred, true = np.asarray(pred).ravel(), np.asarray(true).ravel()
    if pred.shape != true.shape or not len(true):
        raise ValueError(f"need equal, non-empty label vectors, got {pred.shape} and {true.shape}")
    f1 = []
    for c in np.union1d(pred, true):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        f1.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(pred == true)), "macro_f1": float(np.mean(f1))}


def segmentation_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """pred, true: (N, H, W) binary masks -> per-frame mean {"ppv", "sensitivity", "dice"}."""
    return {k: float(v.mean()) for k, v in per_frame_segmentation(pred, true).items()}


def per_frame_segmentation(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """pred, true: (N, H, W) binary masks -> {"ppv", "sensitivity", "dice"}: (N,) per frame."""
    pred, true = np.asarray(pred).astype(bool), np.asarray(true).astype(bool)
    if pred.shape != true.shape or pred.ndim != 3 or not len(pred):
        raise ValueError(f"need equal (N, H, W) masks, got {pred.shape} and {true.shape}")
    tp = (pred & true).sum((1, 2)).astype(np.float64)
    fp = (pred & ~true).sum((1, 2)).astype(np.float64)
    fn = (~pred & true).sum((1, 2)).astype(np.float64)
    ppv = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    sens = np.divide(tp, tp + fn, out=np.ones_like(tp), where=(tp + fn) > 0)
    denom = 2 * tp + fp + fn
    dice = np.divide(2 * tp, denom, out=np.ones_like(tp), where=denom > 0)
    return {"ppv": ppv, "sensitivity": sens, "dice": dice}


def metrics_for(kind: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if kind == "classification" else SEGMENTATION_METRICS
