"""One training step's computation: views, corruption, mask sampling, networks, losses.

``prepare_inputs`` draws everything random from one generator (seeded by the step, so a
resumed run redraws exactly the same views); ``compute_loss`` runs the online network once and
the target network once on the concatenation [view 1, view 2, (corrupted | clean) region].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pretrain.corruption import CorruptionConfig, corrupt
from pretrain.losses import alignment_loss, prediction_loss
from pretrain.masks import (
    MASK_SOURCES,
    dominant_ids,
    grid_masks,
    id_areas,
    pooling_matrix,
    sample_ids,
    superpixel_masks,
    whole_masks,
)
from pretrain.model import STRIDES
from pretrain.views import ViewConfig, byol_view_configs, make_views, to_network_input


@dataclass(frozen=True)
class ObjectiveConfig:
    resolution: int = 224
    scales: int = 4
    k_samples: int = 16
    temperature: float = 0.1
    lambda_ctx: float = 1.0
    mask_source: str = "store"
    views: tuple[ViewConfig, ViewConfig] = field(default_factory=byol_view_configs)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)

    def __post_init__(self):
        if self.resolution % 32 or self.resolution < 32:
            raise ValueError(f"--resolution must be a positive multiple of 32, got {self.resolution}")
        if self.temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {self.temperature}")
        if self.k_samples < 1:
            raise ValueError(f"--k-samples must be >= 1, got {self.k_samples}")
        if self.lambda_ctx < 0:
            raise ValueError(f"--lambda-ctx must be >= 0, got {self.lambda_ctx}")

    @property
    def with_prediction(self) -> bool:
        return self.lambda_ctx > 0


@dataclass
class StepInputs:
    """Network inputs (m, 3, R, R) with m = 2n (+ n with prediction), per-scale pooling matrices
    (m, D, h*w), alignment draws (n, D) ids / weights, prediction draw weights (n, D)."""

    images: torch.Tensor
    target_images: torch.Tensor
    matrices: list[torch.Tensor]
    align_ids: list[torch.Tensor]
    align_weights: list[torch.Tensor]
    pred_weights: list[torch.Tensor]


def source_masks(frames: torch.Tensor, masks: torch.Tensor, source: str) -> torch.Tensor:
    """The anatomy masks of frames (n, S, S) uint8: the store's masks (n, K, S, S) bool, or the
    anatomy-blind replacements of the same shape."""
    n, k, s, _ = masks.shape
    if source == "store":
        return masks
    if source == "grid":
        return grid_masks(n, k, s, frames.device)
    if source == "superpixel":
        return superpixel_masks(frames, k)
    if source == "whole":
        return whole_masks(n, k, s, frames.device)
    raise ValueError(f"--mask-source {source!r}: choose one of {', '.join(MASK_SOURCES)}")


@torch.no_grad()
def prepare_inputs(frames: torch.Tensor, masks: torch.Tensor, cfg: ObjectiveConfig,
                   gen: torch.Generator) -> StepInputs:
    """frames (n, S, S) uint8 and masks (n, K, S, S) bool on the device -> ``StepInputs``."""
    masks = source_masks(frames, masks, cfg.mask_source)
    k = masks.shape[1]
    pair = make_views(frames, masks, cfg.resolution, gen, cfg.views)
    online = [pair.views[0], pair.views[1]]
    target = [pair.views[0], pair.views[1]]
    if cfg.with_prediction:
        online.append(corrupt(pair.region, cfg.corruption, gen))
        target.append(pair.region)
    mats, a_ids, a_w, p_w = [], [], [], []
    for stride in STRIDES[: cfg.scales]:
        h = cfg.resolution // stride
        d1, d2 = dominant_ids(pair.view_masks[0], h), dominant_ids(pair.view_masks[1], h)
        area1, area2 = id_areas(d1, k), id_areas(d2, k)
        ids, w = sample_ids((area1 + area2) * (area1 > 0) * (area2 > 0), cfg.k_samples, gen)
        parts = [pooling_matrix(d1, ids), pooling_matrix(d2, ids)]
        a_ids.append(ids)
        a_w.append(w)
        if cfg.with_prediction:
            dc = dominant_ids(pair.region_masks, h)
            weights = id_areas(dc, k) * pair.region_valid[:, None]
            ids_p, w_p = sample_ids(weights, cfg.k_samples, gen)
            parts.append(pooling_matrix(dc, ids_p))
            p_w.append(w_p)
        mats.append(torch.cat(parts))
    return StepInputs(to_network_input(torch.cat(online)), to_network_input(torch.cat(target)),
                      mats, a_ids, a_w, p_w)


def compute_loss(online, target, inputs: StepInputs, cfg: ObjectiveConfig
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss = sum over scales of (alignment + lambda_ctx * prediction), and its parts
    (detached tensors keyed ``align/s``, ``pred/s`` for scale s = 0 (coarsest) ...)."""
    q = online(inputs.images, inputs.matrices)
    with torch.no_grad():
        z = target(inputs.target_images, inputs.matrices)
    n = inputs.align_ids[0].shape[0]
    total = q[0].new_zeros((), dtype=torch.float32)
    parts = {}
    for s, (qs, zs) in enumerate(zip(q, z, strict=True)):
        align = alignment_loss(qs[:n], qs[n:2 * n], zs[:n], zs[n:2 * n], inputs.align_ids[s],
                               inputs.align_weights[s], cfg.temperature)
        total = total + align
        parts[f"align/{s}"] = align.detach()
        if cfg.with_prediction:
            pred = prediction_loss(qs[2 * n:], zs[2 * n:], inputs.pred_weights[s])
            total = total + cfg.lambda_ctx * pred
            parts[f"pred/{s}"] = pred.detach()
    return total, parts
