"""From LP-SAM's soft per-token masks to at most K clean anatomy masks per frame.

LP-SAM returns T candidate masks per frame (one per latent prompt token) with a predicted
quality score each. Post-processing, per frame:

1. drop tokens whose score is below ``min_score``; threshold probabilities at
   ``mask_threshold``; with ``clip_to_frame`` (on by default), clear every pixel outside the
   frame's letter-box content box (``frame_regions``), so no mask lies in the black padding
   (a candidate wholly there vanishes, one partly there loses that part). The later steps
   never grow a mask beyond the (rectangular) box;
2. coherent regions (``coherent``, on by default; ``coherent_regions``): each thresholded mask
   is opened then closed with a disc of radius ``smooth`` x S (removes speckle-sized specks and
   bridges, joins fragments a few pixels apart), its holes are filled, and components smaller
   than ``min_area_frac`` of the S x S frame are dropped, so masks are anatomy-sized regions;
3. split every mask into connected components (8-connectivity): each component
   is a separate anatomy instance that inherits its token's score; components smaller than
   ``min_area`` pixels are removed;
4. sort instances by score (descending, ties keep token then component order), then greedily
   drop every instance whose IoU with an already kept one exceeds ``dedup_iou``;
5. keep the first ``k``.

When the candidates come with a ``priority`` per token (``MaskPredictor.candidate_priority``:
the latent class tokens before class-agnostic proposals), steps 4-5 visit the instances by
priority first and score second, so proposals fill the slots the class tokens leave and a
proposal that duplicates a class mask is the one dropped; the kept masks are then stored in
descending score, as always.

Everything is deterministic: the same input always gives the same masks in the same order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class PostprocessConfig:
    """Post-processing settings (recorded in the store's ``generation`` attributes).

    Attributes:
        k: mask slots per frame (the store's K), >= 1.
        mask_threshold: probability above which a pixel belongs to a mask, in (0, 1).
        min_score: tokens with a predicted quality below this are dropped, in [0, 1].
        min_area: components with fewer pixels (at store resolution) are removed, >= 1.
        dedup_iou: an instance whose IoU with a higher-scored kept one exceeds this is a
            near-duplicate and dropped, in (0, 1].
        coherent: apply ``coherent_regions`` to every thresholded mask (see the module doc).
        smooth: radius of the opening / closing disc as a fraction of S, in [0, 0.1]
            (0.01: 3 pixels at S = 256; 0 = no smoothing).
        min_area_frac: with ``coherent``, components below this fraction of the S x S frame
            are dropped (on top of ``min_area``), in [0, 1).
        clip_to_frame: restrict every candidate to its frame's letter-box content box (when
            the caller gives the boxes, see ``frame_regions``) before everything else.
    """

    k: int = 16
    mask_threshold: float = 0.5
    min_score: float = 0.0
    min_area: int = 64
    dedup_iou: float = 0.8
    coherent: bool = True
    smooth: float = 0.01
    min_area_frac: float = 0.002
    clip_to_frame: bool = True

    def __post_init__(self):
        if not 1 <= self.k <= 255:
            raise ValueError(f"k must be in [1, 255] (counts are uint8), got {self.k}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")
        if not 0.0 < self.dedup_iou <= 1.0:
            raise ValueError(f"dedup_iou must be in (0, 1], got {self.dedup_iou}")
        if not 0.0 <= self.smooth <= 0.1:
            raise ValueError(f"smooth must be in [0, 0.1] (a fraction of S), got {self.smooth}")
        if not 0.0 <= self.min_area_frac < 1.0:
            raise ValueError(f"min_area_frac must be in [0, 1), got {self.min_area_frac}")

    def to_dict(self) -> dict:
        return asdict(self)


def frame_regions(boxes, size: int) -> np.ndarray:
    """Where each frame's image lies in its letter-boxed S x S square.

    Args:
        boxes: B placements with ``top``, ``left``, ``h``, ``w`` (``maskgen.datasets.letterbox.Letterbox``).
        size: S.
    Returns:
        (B, S, S) bool, True inside each frame's content box (rows top..top+h, columns left..left+w).
    """
    out = np.zeros((len(boxes), size, size), dtype=bool)
    for b, box in enumerate(boxes):
        if min(box.h, box.w) < 1 or min(box.top, box.left) < 0 or max(box.top + box.h, box.left + box.w) > size:
            raise ValueError(f"frame {b}: content box {box} does not fit an S x S square of S = {size}")
        out[b, box.top:box.top + box.h, box.left:box.left + box.w] = True
    return out


def clip_candidates(binary, regions, cfg: PostprocessConfig):
    """The ``clip_to_frame`` rule: thresholded candidates (..., T, S, S) bool (numpy or torch)
    AND their frame's region (..., 1, S, S) bool of the same kind; unchanged without regions or
    with ``clip_to_frame`` off."""
    if regions is None or not cfg.clip_to_frame:
        return binary
    return binary & regions


def _disc(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return yy * yy + xx * xx <= radius * radius


def min_component_area(cfg: PostprocessConfig, shape: tuple[int, int]) -> int:
    """Smallest component kept, in pixels: ``min_area``, and with ``coherent`` at least
    ``min_area_frac`` of the frame."""
    rel = int(np.ceil(cfg.min_area_frac * shape[0] * shape[1])) if cfg.coherent else 0
    return max(cfg.min_area, rel)


def coherent_regions(mask: np.ndarray, cfg: PostprocessConfig) -> np.ndarray:
    """(S, S) bool -> (S, S) bool anatomy-sized regions: opening then closing with a disc of
    radius ``round(cfg.smooth * S)`` (the frame padded so that the border does not erode),
    holes filled, components below ``min_component_area`` removed (8-connectivity)."""
    out = np.asarray(mask, dtype=bool)
    if not out.any():
        return out.copy()
    radius = int(round(cfg.smooth * max(out.shape)))
    if radius > 0:
        disc = _disc(radius)
        padded = np.pad(out, radius + 1, mode="edge")
        padded = ndimage.binary_opening(padded, structure=disc)
        padded = ndimage.binary_closing(padded, structure=disc)
        out = padded[radius + 1:-(radius + 1), radius + 1:-(radius + 1)]
    out = ndimage.binary_fill_holes(out)
    labels, n = ndimage.label(out, structure=_EIGHT_CONNECTED)
    if n == 0:
        return out
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    keep = areas >= min_component_area(cfg, out.shape)
    keep[0] = False
    return keep[labels]


def split_components(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """(S, S) bool -> its 8-connected components with >= ``min_area`` pixels, as (S, S) bool,
    ordered by their first pixel in raster order (a simple reference; the job uses
    ``postprocess_frame``, which never materialises discarded components)."""
    labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    return [labels == i for i in range(1, n + 1) if areas[i] >= min_area]


@dataclass(frozen=True)
class _Instance:
    """One component: label ``label`` of token ``token``'s label map, inside ``box``."""

    score: float
    token: int
    label: int
    area: int
    box: tuple[slice, slice]


def _intersection(a: _Instance, b: _Instance, labels: list[np.ndarray]) -> int:
    box = tuple(slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a.box, b.box, strict=True))
    if any(sl.start >= sl.stop for sl in box):
        return 0
    return int(np.count_nonzero((labels[a.token][box] == a.label) & (labels[b.token][box] == b.label)))


def _is_duplicate(cand: _Instance, kept: list[_Instance], labels: list[np.ndarray], max_iou: float) -> bool:
    for other in kept:
        if other.token == cand.token:  # components of one token are disjoint
            continue
        if min(cand.area, other.area) <= max_iou * max(cand.area, other.area):
            continue  # IoU <= smaller / larger area <= max_iou: cannot be a duplicate
        inter = _intersection(cand, other, labels)
        if inter > max_iou * (cand.area + other.area - inter):
            return True
    return False


def selection_order(scores, priority=None) -> np.ndarray:
    """Instance indices in the order the greedy de-duplication visits them: ascending
    ``priority`` (None: all equal), then descending score, then index (stable)."""
    scores = np.asarray(scores, dtype=np.float64)
    if priority is None:
        return np.argsort(-scores, kind="stable")
    return np.lexsort((-scores, np.asarray(priority)))


def by_score(kept_scores) -> np.ndarray:
    """The kept masks' storage order: descending score, ties in selection order."""
    return np.argsort(-np.asarray(kept_scores, dtype=np.float64), kind="stable")


def postprocess_frame(probs: np.ndarray, scores: np.ndarray, cfg: PostprocessConfig,
                      region: np.ndarray | None = None,
                      priority: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame's candidates -> its anatomy masks.

    Near-duplicates are found greedily in score order against the masks kept so far, and the
    search stops at K kept masks, so the cost does not grow with the number of (noisy)
    components: IoU is computed only inside overlapping bounding boxes.

    Args:
        probs: (T, S, S) float in [0, 1] (or bool, already thresholded) per-token masks.
        scores: (T,) float in [0, 1], predicted quality per token.
        region: (S, S) bool, the frame's content box (``frame_regions``); None: the whole square.
        priority: (T,) int per token, lower kept first (see the module doc); None: by score only.
    Returns:
        masks (M, S, S) bool and scores (M,) float32, M <= cfg.k, sorted by score (descending).
    """
    probs = np.asarray(probs)
    scores = np.asarray(scores, dtype=np.float32)
    if probs.ndim != 3 or scores.shape != probs.shape[:1]:
        raise ValueError(f"expected probs (T, S, S) and scores (T,), got {probs.shape} and {scores.shape}")
    binary = probs if probs.dtype == bool else probs > cfg.mask_threshold
    region = None if region is None else np.asarray(region, dtype=bool)
    if region is not None and region.shape != probs.shape[1:]:
        raise ValueError(f"region {region.shape} does not match the masks' {probs.shape[1:]}")
    binary = clip_candidates(binary, None if region is None else region[None], cfg)
    min_area = min_component_area(cfg, probs.shape[1:])
    labels: list[np.ndarray | None] = []
    instances: list[_Instance] = []
    for t in range(len(binary)):
        if not scores[t] >= cfg.min_score:  # also drops NaN scores (proposals that failed their filter)
            labels.append(None)
            continue
        cand = coherent_regions(binary[t], cfg) if cfg.coherent else binary[t]
        lab, n = ndimage.label(cand, structure=_EIGHT_CONNECTED)
        labels.append(lab)
        if n == 0:
            continue
        areas = np.bincount(lab.ravel(), minlength=n + 1)
        for i, box in enumerate(ndimage.find_objects(lab), start=1):
            if areas[i] >= min_area:
                instances.append(_Instance(float(scores[t]), t, i, int(areas[i]), box))
    ranks = None if priority is None else [int(priority[inst.token]) for inst in instances]
    order = selection_order([inst.score for inst in instances], ranks)
    kept: list[_Instance] = []
    for idx in order:
        if len(kept) == cfg.k:
            break
        if not _is_duplicate(instances[idx], kept, labels, cfg.dedup_iou):
            kept.append(instances[idx])
    kept = [kept[j] for j in by_score([inst.score for inst in kept])]
    masks = np.zeros((len(kept), *probs.shape[1:]), dtype=bool)
    for j, inst in enumerate(kept):
        masks[j] = labels[inst.token] == inst.label
    return masks, np.asarray([inst.score for inst in kept], dtype=np.float32)


def postprocess_batch(probs, scores, cfg: PostprocessConfig, regions: np.ndarray | None = None,
                      priority: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """A batch straight from the predictor -> ``postprocess_frame`` per frame.

    Args:
        probs: (B, T, S, S) float tensor or array in [0, 1], on any device (thresholded there,
            so only booleans cross to the host).
        scores: (B, T) float tensor or array in [0, 1].
        regions: (B, S, S) bool content boxes (``frame_regions``); None: the whole squares.
        priority: (T,) int per token (``postprocess_frame``), or None.
    """
    if hasattr(probs, "detach"):  # a torch tensor: threshold on its device
        binary = (probs.detach() > cfg.mask_threshold).cpu().numpy()
        scores = scores.detach().float().cpu().numpy()
    else:
        binary = np.asarray(probs) > cfg.mask_threshold
        scores = np.asarray(scores, dtype=np.float32)
    scores = np.clip(scores, 0.0, 1.0)  # the store promises [0, 1] (NaN stays NaN and is dropped)
    if regions is not None and regions.shape != (binary.shape[0], *binary.shape[2:]):
        raise ValueError(f"regions {regions.shape} do not match the batch's masks {binary.shape}")
    return [postprocess_frame(binary[b], scores[b], cfg, None if regions is None else regions[b], priority)
            for b in range(len(binary))]
