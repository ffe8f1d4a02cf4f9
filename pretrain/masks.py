"""Anatomy masks at the feature resolutions: sources, dominant assignment, sampling, pooling.

* Sources: the store's LP-SAM masks, or masks that know nothing of anatomy (the controls of
  ``--mask-source``): a regular grid, superpixels from intensity + position (k-means,
  vectorised on the device), or the whole frame as one mask (image-level contrast).
* Assignment: each mask's coverage of a cell is the adaptive average pool of the (warped,
  soft) mask to the feature resolution; each cell belongs to its dominant mask, where
  "no mask" (coverage 1 - sum of the masks) also competes: such cells belong to no anatomy.
* Sampling: K ids per image drawn with replacement from the categorical distribution
  weighted by coverage (cells per id); each draw is weighted by 1 / (times its id was drawn).
* Pooling: the mean feature over the cells of an id, as one batched matrix product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_SOURCES = ("store", "grid", "superpixel", "whole")


def whole_masks(n: int, k: int, size: int, device) -> torch.Tensor:
    """(n, k, size, size) bool: slot 0 is the whole frame, the other slots empty. Every draw is
    then the same id, so alignment contrasts whole frames only (the image-level, BYOL-style
    control: no anatomy, no spatial split)."""
    masks = torch.zeros(n, k, size, size, dtype=torch.bool, device=device)
    masks[:, 0] = True
    return masks


def grid_masks(n: int, k: int, size: int, device) -> torch.Tensor:
    """(n, k, size, size) bool: a g x g regular grid, g = floor(sqrt(k)) (slots past g*g empty)."""
    g = max(1, int(k ** 0.5))
    cell = torch.arange(size, device=device) * g // size               # (size,) in [0, g)
    ids = cell[:, None] * g + cell[None, :]                             # (size, size)
    masks = ids[None] == torch.arange(k, device=device)[:, None, None]
    return masks.unsqueeze(0).expand(n, -1, -1, -1)


def superpixel_masks(frames: torch.Tensor, k: int, iters: int = 5, work: int = 64,
                     compactness: float = 1.0) -> torch.Tensor:
    """SLIC-like superpixels of frames (n, S, S) uint8 -> (n, k, S, S) bool, one per slot.

    k-means on (intensity, compactness * y, compactness * x) at ``work`` x ``work`` pixels,
    centres initialised on a regular grid, all images at once; labels upsampled (nearest).
    """
    n, s, _ = frames.shape
    dev = frames.device
    img = F.interpolate(frames[:, None].float() / 255, size=(work, work), mode="area")[:, 0]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, work, device=dev),
                            torch.linspace(0, 1, work, device=dev), indexing="ij")
    feats = torch.stack([img, compactness * yy.expand_as(img), compactness * xx.expand_as(img)], -1)
    feats = feats.view(n, work * work, 3)
    init = grid_masks(1, k, work, dev)[0].view(k, -1).float()          # (k, P)
    init = init / init.sum(1, keepdim=True).clamp(min=1)
    centres = torch.einsum("kp,npc->nkc", init, feats)
    for _ in range(iters):
        labels = torch.cdist(feats, centres).argmin(-1)                 # (n, P)
        onehot = F.one_hot(labels, k).float()                           # (n, P, k)
        count = onehot.sum(1)[..., None]
        centres = torch.where(count > 0, onehot.transpose(1, 2) @ feats / count.clamp(min=1), centres)
    labels = torch.cdist(feats, centres).argmin(-1).view(n, 1, work, work).float()
    labels = F.interpolate(labels, size=(s, s), mode="nearest")[:, 0].long()
    return labels[:, None] == torch.arange(k, device=dev).view(1, k, 1, 1)


def dominant_ids(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Soft masks (n, K, R, R) in [0, 1] -> (n, size*size) long: each cell's dominant mask id,
    -1 where uncovered area (1 - sum of coverages) dominates."""
    cov = F.adaptive_avg_pool2d(masks, size).flatten(2)                 # (n, K, C)
    none = (1 - cov.sum(1, keepdim=True)).clamp(min=0)
    best = torch.cat([none, cov], 1).argmax(1)                           # 0 = no anatomy
    return best - 1


def id_areas(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Cells per id: ids (n, C) long in [-1, k) -> (n, k) float."""
    return F.one_hot(ids.clamp(min=0), k).float().mul((ids >= 0)[..., None].float()).sum(1)


def sample_ids(weights: torch.Tensor, draws: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``draws`` ids per image from weights (n, K) >= 0 (with replacement).

    Returns ids (n, draws) long (-1 for images with no positive weight) and
    draw_weight (n, draws) float = 1 / (times that id was drawn in the image), 0 for -1.
    """
    total = weights.sum(1, keepdim=True)
    ok = total[:, 0] > 0
    probs = torch.where(ok[:, None], weights / total.clamp(min=1e-12), torch.ones_like(weights))
    ids = torch.multinomial(probs, draws, replacement=True, generator=gen)
    times = (ids[:, :, None] == ids[:, None, :]).sum(-1).float()
    ids = torch.where(ok[:, None], ids, torch.full_like(ids, -1))
    return ids, torch.where(ok[:, None], 1.0 / times, torch.zeros_like(times))


def pooling_matrix(cell_ids: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """Averaging weights (n, D, C): row (i, j) is 1/area over the cells of id drawn[i, j]
    (cell_ids (n, C), drawn (n, D)); all zero when the id has no cell or is -1."""
    hit = ((cell_ids[:, None, :] == drawn[:, :, None]) & (drawn[:, :, None] >= 0)).float()
    return hit / hit.sum(-1, keepdim=True).clamp(min=1)


def mask_pool(features: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Mask-pooled mean features: features (n, Ch, h, w), matrix (n, D, h*w) -> (n, D, Ch)."""
    return matrix.to(features.dtype) @ features.flatten(2).transpose(1, 2)
