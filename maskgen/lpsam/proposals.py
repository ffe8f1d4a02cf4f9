"""Class-agnostic mask proposals: grids of point or box prompts through the adapted decoder.

Two families of prompts that know nothing of the anatomy classes:

* ``grid``: as SAM's automatic mask generator does, a regular n x n grid of single foreground
  points (SAM's prompt encoder, as in phase 1's point prompts);
* ``boxes``: square boxes tiled over the frame at a few sizes (``box_sides``, fractions of S),
  neighbours overlapping by ``box_overlap`` of a side. Phase 1 trains the decoder on box
  prompts as much as on points, and a box says how large the region is where a point does not,
  so the decoder only has to find the structure inside it (one point on an unseen lesion is
  ambiguous: a speckle blob, the lesion, or the tissue around it).

All (frame, prompt) pairs go through ``LPSAM.decode`` in batched calls that reuse the frame's
image embedding. A proposal is kept when its predicted IoU reaches ``min_iou`` and its
stability reaches ``min_stability``; the stability score is SAM's: the IoU between the mask
thresholded at logit +offset and at logit -offset (a mask that barely changes when the
threshold moves is a confident region). Rejected proposals get a NaN score, which the store's
post-processing drops; the survivors compete with the latent class tokens' masks there
(near-duplicates removed, best K kept).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

# each mode names the candidate families it makes; ``both`` is the older name of latent+grid
MODE_FAMILIES = {
    "latent": ("latent",),
    "grid": ("grid",),
    "boxes": ("boxes",),
    "both": ("latent", "grid"),
    "latent+boxes": ("latent", "boxes"),
    "latent+grid+boxes": ("latent", "grid", "boxes"),
}
PROPOSAL_MODES = tuple(MODE_FAMILIES)
MERGE_RULES = ("latent-first", "score")


@dataclass(frozen=True)
class ProposalConfig:
    """How candidates are made (recorded in the store's ``generation`` attributes).

    Attributes:
        mode: which candidate families (``MODE_FAMILIES``): ``latent`` (one mask per latent
            class token), ``grid`` (point-grid proposals), ``boxes`` (box-grid proposals),
            ``both`` (latent + grid), ``latent+boxes`` or ``latent+grid+boxes``.
        points_per_side: n, the grid has n x n points at cell centres, >= 1.
        box_sides: sides of the tiled boxes as fractions of S, each in (0, 1].
        box_overlap: overlap of neighbouring boxes as a fraction of their side, in [0, 1).
        merge: how the latent class tokens' masks and the proposals share the K slots:
            ``latent-first`` (the class masks are kept first, proposals fill the slots left and
            lose to a class mask they duplicate) or ``score`` (one ranking by predicted IoU).
        min_iou: proposals whose predicted IoU is lower are dropped, in [0, 1].
        min_stability: proposals whose stability score is lower are dropped, in [0, 1].
        stability_offset: the logit offset of the stability score, > 0.
        chunk: (frame, point) pairs per decoder call (bounds memory), >= 1.
    """

    mode: str = "latent"
    points_per_side: int = 8
    box_sides: tuple[float, ...] = (0.25, 0.375, 0.5)
    box_overlap: float = 0.5
    merge: str = "latent-first"
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
        object.__setattr__(self, "box_sides", tuple(float(x) for x in self.box_sides))
        if not self.box_sides or not all(0 < x <= 1 for x in self.box_sides):
            raise ValueError(f"box_sides must be fractions of the frame in (0, 1], got {self.box_sides}")
        if not 0.0 <= self.box_overlap < 1.0:
            raise ValueError(f"box_overlap must be in [0, 1), got {self.box_overlap}")
        if self.merge not in MERGE_RULES:
            raise ValueError(f"merge must be one of {', '.join(MERGE_RULES)}, got {self.merge!r}")

    @property
    def latent(self) -> bool:
        return "latent" in MODE_FAMILIES[self.mode]

    @property
    def grid(self) -> bool:
        return "grid" in MODE_FAMILIES[self.mode]

    @property
    def boxes(self) -> bool:
        return "boxes" in MODE_FAMILIES[self.mode]

    @property
    def mixed(self) -> bool:
        """Latent class tokens and class-agnostic proposals compete for the slots."""
        return self.latent and (self.grid or self.boxes)

    def to_dict(self) -> dict:
        """The settings, each only where it acts (a store made before box proposals and the
        merge rule existed keeps its identity when it uses neither)."""
        d = asdict(self)
        if not self.boxes:
            d.pop("box_sides")
            d.pop("box_overlap")
        else:
            d["box_sides"] = list(self.box_sides)
        if not self.mixed:
            d.pop("merge")
        return d


def point_grid(points_per_side: int, size: int, device=None) -> torch.Tensor:
    """(n*n, 2) float (x, y) pixel coordinates at the centres of an n x n grid over S x S."""
    step = size / points_per_side
    centres = (torch.arange(points_per_side, device=device, dtype=torch.float32) + 0.5) * step
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def box_grid(sides: tuple[float, ...], overlap: float, size: int, device=None) -> torch.Tensor:
    """(P, 4) float boxes x0, y0, x1, y1 (pixel indices) tiling an S x S frame: for each side
    fraction f, squares of side round(f * S) at a stride of side * (1 - overlap), the last row
    and column flush with the frame's far edge so the whole frame is covered."""
    out = []
    for frac in sides:
        side = max(1, round(frac * size))
        stride = max(1, round(side * (1 - overlap)))
        starts = list(range(0, size - side + 1, stride))
        if starts[-1] != size - side:
            starts.append(size - side)
        out += [(x, y, x + side - 1, y + side - 1) for y in starts for x in starts]
    return torch.tensor(out, dtype=torch.float32, device=device)


def stability_scores(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """SAM's stability score: IoU(logits > +offset, logits > -offset); (..., H, W) -> (...)."""
    inner = (logits > offset).flatten(-2).sum(-1, dtype=torch.int64)
    outer = (logits > -offset).flatten(-2).sum(-1, dtype=torch.int64)
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.zeros_like(inner, dtype=torch.float32)).float()


def grid_proposals(model, embeddings: torch.Tensor, cfg: ProposalConfig,
                   detail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Point-grid proposals of a batch of frames.

    Args:
        model: an ``LPSAM`` (its prompt encoder and ``decode``).
        embeddings: (B, C, h, w) image embeddings of the frames.
        detail: (B, C / 8, m, m) the frames' detail features (``LPSAM.detail_features``) or None.
    Returns:
        low-resolution logits (B, P, m, m) and scores (B, P), P = points_per_side ** 2: the
        predicted IoU, NaN where the proposal fails the IoU or stability filter.
    """
    size = int(model.config.input_size)
    points = point_grid(cfg.points_per_side, size, embeddings.device)            # (P, 2)
    labels = torch.ones((points.shape[0], 1), dtype=torch.int64, device=embeddings.device)
    sparse, _ = model.prompt_encoder(points=(points[:, None, :], labels), boxes=None, masks=None)  # (P, k, C)
    return prompted_proposals(model, embeddings, sparse, cfg, detail)


def box_proposals(model, embeddings: torch.Tensor, cfg: ProposalConfig,
                  detail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Box-grid proposals of a batch of frames (``box_grid`` boxes as prompts; ``detail`` as in
    ``grid_proposals``).

    Returns:
        low-resolution logits (B, P, m, m) and scores (B, P), P = len(box_grid(...)), scored
        and filtered as ``grid_proposals``.
    """
    boxes = box_grid(cfg.box_sides, cfg.box_overlap, int(model.config.input_size), embeddings.device)
    sparse, _ = model.prompt_encoder(points=None, boxes=boxes, masks=None)        # (P, 2, C)
    return prompted_proposals(model, embeddings, sparse, cfg, detail)


def prompted_proposals(model, embeddings: torch.Tensor, sparse: torch.Tensor, cfg: ProposalConfig,
                       detail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame with every prompt through the decoder, ``cfg.chunk`` pairs per call.

    Args:
        embeddings: (B, C, h, w) image embeddings; sparse: (P, k, C) prompt embeddings;
        detail: (B, C / 8, m, m) detail features or None.
    Returns:
        logits (B, P, m, m) and scores (B, P): predicted IoU in [0, 1], NaN where it is below
        ``min_iou`` or the stability score below ``min_stability``.
    """
    b, p = embeddings.shape[0], sparse.shape[0]
    frame_of = torch.arange(b, device=embeddings.device).repeat_interleave(p)    # (B*P,)
    prompt_of = torch.arange(p, device=embeddings.device).repeat(b)
    logits, iou = [], []
    for start in range(0, b * p, cfg.chunk):
        sl = slice(start, start + cfg.chunk)
        out, q = model.decode(embeddings, sparse[prompt_of[sl]].to(embeddings.dtype), detail=detail,
                              rows=frame_of[sl])
        logits.append(out[:, 0])
        iou.append(q[:, 0])
    logits_all = torch.cat(logits).view(b, p, *logits[0].shape[-2:])
    iou_all = torch.cat(iou).float().view(b, p).clamp(0, 1)
    stable = stability_scores(logits_all.float(), cfg.stability_offset)
    keep = (iou_all >= cfg.min_iou) & (stable >= cfg.min_stability)
    scores = torch.where(keep, iou_all, torch.full_like(iou_all, float("nan")))
    return logits_all, scores
