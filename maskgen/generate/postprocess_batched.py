"""``postprocess.postprocess_batch`` as batched tensor operations, on the predictor's device.

The same rules as ``maskgen.generate.postprocess`` (see its module docstring) and the same results, bit
for bit (``tests/maskgen/generate/test_postprocess_batched.py``), but every frame and token of a batch
at once, on whatever device holds the predictor's output (CPU or GPU; no device literal):

* threshold, token scores (``min_score``) and the frames' content boxes (``clip_to_frame``, the
  same ``postprocess.clip_candidates``) on the device;
* opening / closing with the disc (``coherent``): min / max over the disc, from running
  maxima over its horizontal segments (exact on 0/1 values). Zeros outside the edge-padded frame, as
  scipy's ``border_value=0``;
* hole filling: background reached from the frame's border through 4-connected background
  (scipy's ``binary_fill_holes``), spread along whole row / column runs, to convergence;
* 8-connected components: every foreground pixel starts with its raster index and takes the
  minimum over its 3 x 3 neighbourhood and its row / column runs (plus pointer jumping) until
  nothing changes, so each component ends labelled by its first pixel in raster order --
  scipy's label order;
* areas and the ``min_area`` filter from one ``unique`` over (frame, token, component) keys;
* IoU de-duplication: intersections of a frame's instances as one matrix product (exact:
  0/1 values, integer sums below 2**24), then the same greedy pass in score order on the host
  (a few dozen candidates; identical comparisons in Python floats) and the first K.

Only the kept masks cross back to the host.
"""

from __future__ import annotations

import numpy as np

from maskgen.generate.postprocess import (
    PostprocessConfig,
    by_score,
    clip_candidates,
    min_component_area,
    selection_order,
)

POSTPROCESS_PATHS = ("frame", "batched")  # maskgen run --postprocess


def _disc_morph(x, radius: int, erode: bool):
    """Binary erosion / dilation of x (N, 1, H, W) float 0/1 by the disc of ``radius`` (the
    pixels with dy^2 + dx^2 <= radius^2), zeros outside x (scipy's ``border_value=0``): the disc
    is 2r + 1 horizontal segments; running maxima of growing half-width, then one max over
    the row offsets (min = -max(-x))."""
    import math

    import torch
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    r = radius
    z = F.pad(x, (r, r, r, r), value=0.0)
    if erode:
        z = -z
    run = [z]  # run[k][..., c] = max of z over columns c - k .. c + k (where it is used)
    for _ in range(r):
        prev = run[-1]
        nxt = prev.clone()
        nxt[..., 1:-1] = torch.maximum(torch.maximum(prev[..., :-2], prev[..., 1:-1]), prev[..., 2:])
        run.append(nxt)
    out = None
    for dy in range(-r, r + 1):
        band = run[math.isqrt(r * r - dy * dy)][..., r + dy:r + dy + h, r:r + w]
        out = band if out is None else torch.maximum(out, band)
    return -out if erode else out


def _coherent(x, cfg: PostprocessConfig):
    """x (N, 1, S, S) float 0/1 -> opened, closed (edge-padded frame), holes filled."""
    import torch.nn.functional as F

    radius = int(round(cfg.smooth * max(x.shape[-2:])))
    if radius > 0:
        p = radius + 1
        y = F.pad(x, (p, p, p, p), mode="replicate")
        y = _disc_morph(_disc_morph(y, radius, erode=True), radius, erode=False)   # opening
        y = _disc_morph(_disc_morph(y, radius, erode=False), radius, erode=True)   # closing
        x = y[..., p:-p, p:-p]
    return _fill_holes(x)


def _along_runs(v, mask, reduce: str):
    """v (N, H, W) float, mask (N, H, W) bool -> v where every maximal run of ``mask`` along the
    last axis holds the ``reduce`` ("amin" / "amax") of v over the run (other pixels as they are)."""
    import torch

    n, h, w = v.shape
    neutral = float("inf") if reduce == "amin" else float("-inf")
    run = torch.cumsum((~mask).to(torch.int64), -1)                        # in [0, W]
    run = run + (w + 1) * torch.arange(n * h, device=v.device).view(n, h, 1)
    buf = torch.full(((w + 1) * n * h,), neutral, device=v.device, dtype=v.dtype)
    buf.scatter_reduce_(0, run.flatten(), torch.where(mask, v, torch.full_like(v, neutral)).flatten(), reduce)
    return torch.where(mask, buf[run], v)


def _sweep(v, mask, reduce: str):
    """``_along_runs`` along rows, then along columns."""
    v = _along_runs(v, mask, reduce)
    return _along_runs(v.transpose(1, 2), mask.transpose(1, 2), reduce).transpose(1, 2)


def _fill_holes(x):
    """x (N, 1, S, S) float 0/1 -> x with every background region not 4-connected to the
    frame's border set. Reached background spreads along whole row and column runs per pass
    (4-connected moves), from the background on the border (scipy's border_value=1)."""
    import torch

    background = x[:, 0] < 0.5
    border = torch.zeros_like(background)
    border[:, 0], border[:, -1], border[:, :, 0], border[:, :, -1] = True, True, True, True
    reached = (background & border).to(x.dtype)
    while True:
        before = reached
        reached = _sweep(reached, background, "amax")
        if torch.equal(reached, before):
            break
    holes = background & (reached < 0.5)
    return torch.where(holes[:, None], torch.ones_like(x), x)


def _min3x3(v):
    """Minimum over each pixel's 3 x 3 neighbourhood (inside the frame) of v (N, H, W)."""
    import torch

    rows = v.clone()
    rows[:, :, 1:] = torch.minimum(rows[:, :, 1:], v[:, :, :-1])
    rows[:, :, :-1] = torch.minimum(rows[:, :, :-1], v[:, :, 1:])
    out = rows.clone()
    out[:, 1:] = torch.minimum(out[:, 1:], rows[:, :-1])
    out[:, :-1] = torch.minimum(out[:, :-1], rows[:, 1:])
    return out


def _label8(fg):
    """fg (N, S, S) bool -> (N, S*S) long: for foreground pixels 1 + the raster index of their
    8-connected component's first pixel, 0 for background. Each pass: the minimum over the
    3 x 3 neighbourhood, over whole row and column runs, and pointer jumping (a label is a
    pixel of the same component whose label is not larger), until nothing changes."""
    import torch

    n, h, w = fg.shape
    big = float(h * w + 1)                                   # exact in float32 below 2**24
    index = torch.arange(1, h * w + 1, device=fg.device, dtype=torch.float32).view(1, h, w).expand(n, -1, -1)
    lab = torch.where(fg, index, torch.full_like(index, big))
    while True:
        before = lab
        low = _min3x3(lab)
        lab = torch.where(fg, torch.minimum(lab, low), lab)
        lab = _sweep(lab, fg, "amin")
        flat = lab.reshape(n, h * w)
        jump = torch.gather(flat, 1, (flat.clamp(max=h * w) - 1).long()).view(n, h, w)
        lab = torch.where(fg, torch.minimum(lab, jump), lab)
        if torch.equal(lab, before):
            break
    return torch.where(fg, lab, torch.zeros_like(lab)).reshape(n, h * w).long()


def _greedy(order, tokens, areas, inter, k: int, max_iou: float) -> list[int]:
    """``postprocess._is_duplicate``'s pass over instance indices in ``order``."""
    kept: list[int] = []
    for idx in order:
        if len(kept) == k:
            break
        duplicate = False
        for other in kept:
            if tokens[other] == tokens[idx]:
                continue
            a, b = areas[idx], areas[other]
            if min(a, b) <= max_iou * max(a, b):
                continue
            common = inter[idx][other]
            if common > max_iou * (a + b - common):
                duplicate = True
                break
        if not duplicate:
            kept.append(idx)
    return kept


def postprocess_batch_batched(probs, scores, cfg: PostprocessConfig, regions: np.ndarray | None = None,
                              priority: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Same contract and results as ``postprocess.postprocess_batch``.

    Args:
        probs: (B, T, S, S) float tensor or array in [0, 1] (or bool, already thresholded).
        scores: (B, T) float tensor or array.
        regions: (B, S, S) bool array, the frames' content boxes (``postprocess.frame_regions``);
            None: the whole squares.
        priority: (T,) int per token, lower kept first (``postprocess.postprocess_frame``); None: by score.
    Returns: per frame, masks (M, S, S) bool and scores (M,) float32, M <= cfg.k.
    """
    import torch

    probs = probs.detach() if isinstance(probs, torch.Tensor) else torch.from_numpy(np.asarray(probs))
    scores = scores.detach() if isinstance(scores, torch.Tensor) else torch.from_numpy(np.asarray(scores))
    if probs.ndim != 4 or scores.shape != probs.shape[:2]:
        raise ValueError(f"expected probs (B, T, S, S) and scores (B, T), got {tuple(probs.shape)} "
                         f"and {tuple(scores.shape)}")
    b, t, h, w = probs.shape
    host_scores = np.clip(scores.float().cpu().numpy(), 0.0, 1.0)  # NaN stays NaN and is dropped
    usable = torch.from_numpy(host_scores >= cfg.min_score).to(probs.device)
    binary = probs if probs.dtype == torch.bool else probs > cfg.mask_threshold
    binary = binary & usable[:, :, None, None]
    if regions is not None:
        if tuple(regions.shape) != (b, h, w):
            raise ValueError(f"regions {tuple(regions.shape)} do not match the batch's masks {(b, t, h, w)}")
        regions = torch.from_numpy(np.asarray(regions, dtype=bool)).to(probs.device)[:, None]
    binary = clip_candidates(binary, regions, cfg)
    if cfg.coherent:
        x = _coherent(binary.reshape(b * t, 1, h, w).float(), cfg)
        binary = x.view(b, t, h, w) > 0.5
    labels = _label8(binary.reshape(b * t, h, w))                         # (B*T, S*S)
    fg = labels > 0
    keys = torch.arange(b * t, device=labels.device)[:, None] * (h * w) + (labels - 1)
    comp, area = torch.unique(keys[fg], return_counts=True)               # sorted: frame, token, raster
    big_enough = area >= min_component_area(cfg, (h, w))
    comp, area = comp[big_enough], area[big_enough]
    map_index = (comp // (h * w)).cpu().numpy()
    roots = (comp % (h * w)).cpu().numpy()
    areas = area.cpu().numpy()
    out = []
    for f in range(b):
        sel = np.nonzero(map_index // t == f)[0]
        tokens = (map_index[sel] % t).tolist()
        if not len(sel):
            out.append((np.zeros((0, h, w), bool), np.zeros((0,), np.float32)))
            continue
        inst_labels = torch.from_numpy(roots[sel] + 1).to(labels.device)
        rows = labels[f * t + torch.from_numpy(map_index[sel] % t).to(labels.device)]     # (N, S*S)
        onehot = (rows == inst_labels[:, None]).float()
        inter = (onehot @ onehot.t()).round().long().cpu().tolist()
        inst_scores = [float(host_scores[f, tok]) for tok in tokens]
        ranks = None if priority is None else [int(priority[tok]) for tok in tokens]
        order = selection_order(inst_scores, ranks).tolist()
        kept = _greedy(order, tokens, [int(a) for a in areas[sel]], inter, cfg.k, cfg.dedup_iou)
        kept = [kept[j] for j in by_score([inst_scores[i] for i in kept])]
        masks = onehot[kept].view(len(kept), h, w).bool().cpu().numpy()
        out.append((masks, np.asarray([inst_scores[i] for i in kept], dtype=np.float32)))
    return out


def run_postprocess(path: str, probs, scores, cfg: PostprocessConfig, regions: np.ndarray | None = None,
                    priority: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``--postprocess frame`` (the per-frame reference on the host) or ``batched``; ``regions``
    (B, S, S) bool: the frames' content boxes (``postprocess.frame_regions``) or None;
    ``priority`` (T,) int per candidate (``MaskPredictor.candidate_priority``) or None."""
    if path == "frame":
        from maskgen.generate.postprocess import postprocess_batch

        return postprocess_batch(probs, scores, cfg, regions, priority)
    if path == "batched":
        return postprocess_batch_batched(probs, scores, cfg, regions, priority)
    raise ValueError(f"--postprocess {path!r}: choose one of {', '.join(POSTPROCESS_PATHS)}")
