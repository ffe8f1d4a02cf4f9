"""Segmentation losses of LP-SAM: (1 - a) BCE + a Dice, and the mask-quality (IoU) loss.

Dice is what copes with ultrasound's foreground/background imbalance (a nodule covers a few
percent of the frame); the default a = 0.8 follows SAMUS (0.8 Dice + 0.2 BCE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_DICE_WEIGHT = 0.8


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per mask: logits, target (N, H, W) -> (N,) in [0, 1]."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    return 1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)


def balanced_weights(target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE weights (N, H, W) that give a mask's foreground and background half the
    weight each (mean 1); a mask without foreground keeps weight 1 everywhere."""
    frac = target.flatten(1).mean(1).view(-1, *([1] * (target.dim() - 1)))
    has = (frac > 0) & (frac < 1)
    pos = torch.where(has, 0.5 / frac.clamp(min=1e-6), 1.0)
    neg = torch.where(has, 0.5 / (1 - frac).clamp(min=1e-6), 1.0)
    return torch.where(target > 0.5, pos, neg)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = DEFAULT_DICE_WEIGHT,
                  balanced: bool = False) -> torch.Tensor:
    """(1 - a) BCE + a Dice per mask: logits, target (N, H, W) (target in {0, 1}) -> (N,).

    ``balanced``: the BCE's foreground and background pixels weigh half each
    (``balanced_weights``): a mask far from its structure then still feels a pull of the
    structure's size, where the Dice term is flat (about 1 for an empty and a wrong mask alike).
    """
    if not 0 <= dice_weight <= 1:
        raise ValueError(f"dice weight a={dice_weight} must lie in [0, 1]")
    weight = balanced_weights(target) if balanced else None
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none").flatten(1).mean(1)
    return (1 - dice_weight) * bce + dice_weight * dice_loss(logits, target)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded masks (logit > 0) with the target: (N, H, W) -> (N,); empty/empty = 1."""
    pred = logits > 0
    t = target > 0.5
    inter = (pred & t).flatten(1).sum(1).float()
    union = (pred | t).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, iou_pred: torch.Tensor,
                      dice_weight: float = DEFAULT_DICE_WEIGHT, iou_weight: float = 1.0,
                      balanced: bool = False) -> torch.Tensor:
    """Per-mask loss: BCE/Dice on the mask + ``iou_weight`` * MSE of the predicted quality.

    Args:
        logits, target: (N, H, W). iou_pred: (N,) predicted IoU (SAM's quality head).
    Returns:
        (N,) losses.
    """
    quality = mask_iou(logits.detach(), target)
    return bce_dice_loss(logits, target, dice_weight, balanced) + iou_weight * (iou_pred - quality) ** 2
