"""Class-agnostic mask proposals: a grid of point prompts through the adapted decoder.

As SAM's automatic mask generator does, every frame is prompted with a regular n x n grid of
single foreground points (SAM's prompt encoder, as in phase 1's point prompts); all
(frame, point) pairs go through ``LPSAM.decode`` in batched calls that reuse the frame's image
embedding. A proposal is kept when its predicted IoU reaches ``min_iou`` and its stability
reaches ``min_stability``; the stability score is SAM's: the IoU between the mask
thresholded at logit +offset and at logit -offset (a mask that barely changes when the
threshold moves is a confident region). Rejected proposals get a NaN score, which the store's
post-processing drops; the survivors compete with the latent class tokens' masks there
(near-duplicates removed, best K kept).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

PROPOSAL_MODES = ("latent", "grid", "both")


@dataclass(frozen=True)
class ProposalConfig:
    """How candidates are made (recorded in the store's ``generation`` attributes).

    Attributes:
        mode: ``latent`` (one mask per latent class token), ``grid`` (point-grid proposals
            only) or ``both``.
        points_per_side: n, the grid has n x n points at cell centres, >= 1.
        min_iou: proposals whose predicted IoU is lower are dropped, in [0, 1].
        min_stability: proposals whose stability score is lower are dropped, in [0, 1].
        stability_offset: the logit offset of the stability score, > 0.
        chunk: (frame, point) pairs per decoder call (bounds memory), >= 1.
    """

    mode: str = "latent"
    points_per_side: int = 8
    min_iou: float = 0.5
    min_stability: float = 0.85
    stability_offset: float = 1.0
    chunk: int = 256

    def __post_init__(self):
        if self.mode not in PROPOSAL_MODES:
            raise ValueError(f"mode (--proposals) must be one of {', '.join(PROPOSAL_MODES)}, got {self.mode!r}")
        if self.points_per_side < 1:
            raise ValueError(f"points_per_side must be >= 1, got {self.points_per_side}")
        for name in ("min_iou", "min_stability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.stability_offset <= 0:
            raise ValueError(f"stability_offset must be > 0, got {self.stability_offset}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")

    @property
    def latent(self) -> bool:
        return self.mode in ("latent", "both")

    @property
    def grid(self) -> bool:
        return self.mode in ("grid", "both")

    def to_dict(self) -> dict:
        return asdict(self)


def point_grid(points_per_side: int, size: int, device=None) -> torch.Tensor:
    """(n*n, 2) float (x, y) pixel coordinates at the centres of an n x n grid over S x S."""
    step = size / points_per_side
    centres = (torch.arange(points_per_side, device=device, dtype=torch.float32) + 0.5) * step
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def stability_scores(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """SAM's stability score: IoU(logits > +offset, logits > -offset); (..., H, W) -> (...)."""
    inner = (logits > offset).flatten(-2).sum(-1, dtype=torch.int64)
    outer = (logits > -offset).flatten(-2).sum(-1, dtype=torch.int64)
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.zeros_like(inner, dtype=torch.float32)).float()


def grid_proposals(model, embeddings: torch.Tensor, cfg: ProposalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Point-grid proposals of a batch of frames.

    Args:
        model: an ``LPSAM`` (its prompt encoder and ``decode``).
        embeddings: (B, C, h, w) image embeddings of the frames.
    Returns:
        low-resolution logits (B, P, m, m) and scores (B, P), P = points_per_side ** 2: the
        predicted IoU, NaN where the proposal fails the IoU or stability filter.
    """
    b = embeddings.shape[0]
    size = int(model.config.input_size)
    points = point_grid(cfg.points_per_side, size, embeddings.device)            # (P, 2)
    p = points.shape[0]
    coords = points[:, None, :]                                                  # (P, 1, 2)
    labels = torch.ones((p, 1), dtype=torch.int64, device=embeddings.device)
    sparse, _ = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)  # (P, k, C)
    frame_of = torch.arange(b, device=embeddings.device).repeat_interleave(p)    # (B*P,)
    point_of = torch.arange(p, device=embeddings.device).repeat(b)
    logits, iou = [], []
    for start in range(0, b * p, cfg.chunk):
        sl = slice(start, start + cfg.chunk)
        out, q = model.decode(embeddings[frame_of[sl]], sparse[point_of[sl]].to(embeddings.dtype))
        logits.append(out[:, 0])
        iou.append(q[:, 0])
    logits_all = torch.cat(logits).view(b, p, *logits[0].shape[-2:])
    iou_all = torch.cat(iou).float().view(b, p).clamp(0, 1)
    stable = stability_scores(logits_all.float(), cfg.stability_offset)
    keep = (iou_all >= cfg.min_iou) & (stable >= cfg.min_stability)
    scores = torch.where(keep, iou_all, torch.full_like(iou_all, float("nan")))
    return logits_all, scores
