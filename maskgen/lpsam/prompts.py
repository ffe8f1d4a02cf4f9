"""Prompts taken from the ground truth: boxes and/or points, drawn reproducibly (phase 1), and the
one click a person would give (the held-out reference of ``maskgen.lpsam.evaluate``)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

PROMPT_MODES = ("box", "point", "box+point")


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(P, H, W) non-empty binary masks -> (P, 4) float boxes x0, y0, x1, y1 (pixel indices)."""
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[-2:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def jitter_boxes(boxes: torch.Tensor, size: int, amount: float, gen: torch.Generator) -> torch.Tensor:
    """Move each box side by up to ``amount`` x box extent (uniform), clamped to the frame."""
    extent = (boxes[:, 2:] - boxes[:, :2] + 1).repeat(1, 2)
    noise = (torch.rand(boxes.shape, generator=gen) * 2 - 1).to(boxes.device)
    return (boxes + noise * amount * extent).clamp(0, size - 1)


def sample_points(masks: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One uniformly drawn foreground pixel per mask: (P, H, W) -> (P, 1, 2) float (x, y)."""
    w = masks.shape[-1]
    weights = masks.flatten(1).float().cpu()
    flat = torch.multinomial(weights, 1, generator=gen).flatten().to(masks.device)
    return torch.stack([flat % w, flat // w], dim=1).float().unsqueeze(1)


def interior_points(masks: torch.Tensor) -> torch.Tensor:
    """Each mask's innermost pixel, where a person clicks to show the structure: (P, H, W) non-empty
    binary masks -> (P, 1, 2) float (x, y).

    The pixel farthest from the mask's boundary (Euclidean distance transform, the frame's edge
    counting as boundary; the first in raster order on ties): inside a ring's wall, not its hole.
    """
    w = masks.shape[-1]
    flat = []
    for mask in masks.bool().cpu().numpy():
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        flat.append(int(np.argmax(depth)))
    flat = torch.tensor(flat, dtype=torch.int64, device=masks.device)
    return torch.stack([flat % w, flat // w], dim=1).float().unsqueeze(1)


def click_prompts(prompt_encoder, masks: torch.Tensor) -> torch.Tensor:
    """Sparse prompt embeddings (P, k, C) of one positive click at each non-empty mask's innermost
    pixel (``interior_points``), as a phase-1 point prompt is encoded."""
    coords = interior_points(masks > 0.5)
    labels = torch.ones(coords.shape[:2], device=masks.device, dtype=torch.int64)
    sparse, _ = prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    return sparse


def gt_prompts(prompt_encoder, masks: torch.Tensor, mode: str, gen: torch.Generator,
               box_jitter: float = 0.1) -> torch.Tensor:
    """Sparse prompt embeddings (P, k, C) from non-empty GT masks (P, S, S) via SAM's prompt encoder."""
    if mode not in PROMPT_MODES:
        raise ValueError(f"prompt mode {mode!r} is not one of {PROMPT_MODES}")
    size = masks.shape[-1]
    binary = masks > 0.5
    points = boxes = None
    if "point" in mode:
        coords = sample_points(binary, gen)
        points = (coords, torch.ones(coords.shape[:2], device=masks.device, dtype=torch.int64))
    if "box" in mode:
        boxes = jitter_boxes(mask_boxes(binary), size, box_jitter, gen)
    sparse, _ = prompt_encoder(points=points, boxes=boxes, masks=None)
    return sparse
