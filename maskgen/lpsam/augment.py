"""Domain randomisation of adaptation batches: LP-SAM should learn anatomy, not one scanner.

Each training frame is, with probability ``p``, re-imaged as another probe / machine /
operator might have shown it (all draws from the step's generator, so resuming stays exact):

* probe geometry and depth: a random similarity transform (zoom, rotation, shift; the area
  that leaves the field of view is black, as outside a sector), applied to the image
  (bilinear) and its label masks (nearest) alike;
* gain: a global gain, a depth ramp (time-gain compensation) and a gamma (log-compression
  curve);
* speckle and resolution: multiplicative log-normal noise correlated over a random grain size,
  and a random blur (point-spread function); grain and blur sizes are drawn once per batch,
  their strengths per frame.

and, before all that, with probability ``paste`` per frame (``copy_paste``):

* copy-paste: one labelled structure of another frame of the batch, of a class the frame's own
  dataset does not label, is pasted (pixels inside its mask, seam feathered over a pixel) at a
  random place in the frame's field of view, occluding what was there; it becomes a labelled
  structure of the frame. Structures then appear in contexts their dataset never shows (a
  nodule in a cardiac view), so "segment what the prompt points at" cannot lean on the
  surrounding anatomy: the simple copy-paste augmentation of instance segmentation
  (Ghiasi et al., CVPR 2021).

Nothing here looks at what the phantom renders: the ranges are generic B-mode variations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the randomisation (``p`` = 0 switches it off).

    Attributes:
        p: probability that a frame is randomised, in [0, 1].
        zoom: (min, max) scale factor; rotate: max degrees; shift: max shift, fraction of S.
        gain: (min, max) global gain; ramp: max |gain change| from top to bottom of the frame.
        gamma: (min, max) exponent on intensities in [0, 1].
        speckle: max std of the log-normal multiplicative noise; grain: (min, max) noise
            correlation length in pixels at S = 256.
        blur: max Gaussian blur sigma in pixels at S = 256.
        paste: probability that a frame receives a structure of another frame (``copy_paste``).
    """

    p: float = 0.8
    zoom: tuple[float, float] = (0.75, 1.3)
    rotate: float = 15.0
    shift: float = 0.1
    gain: tuple[float, float] = (0.6, 1.4)
    ramp: float = 0.5
    gamma: tuple[float, float] = (0.6, 1.6)
    speckle: float = 0.35
    grain: tuple[float, float] = (1.0, 4.0)
    blur: float = 1.5
    paste: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


PASTE_TRIES = 4          # random placements tried per frame before giving up
PASTE_IN_VIEW = 0.95     # share of the pasted structure that must land inside the field of view


NO_AUGMENT = AugmentConfig(p=0.0)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _geometry(images: torch.Tensor, target: torch.Tensor, cfg: AugmentConfig, on: torch.Tensor,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    b = images.shape[0]
    zoom = torch.exp(_uniform(b, math.log(cfg.zoom[0]), math.log(cfg.zoom[1]), gen))
    angle = _uniform(b, -cfg.rotate, cfg.rotate, gen) * math.pi / 180
    shift = _uniform(2 * b, -2 * cfg.shift, 2 * cfg.shift, gen).view(b, 2)   # normalised coords span 2
    zoom, angle, shift = (torch.where(on, zoom, 1.0), torch.where(on, angle, 0.0),
                          torch.where(on[:, None], shift, 0.0))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.device), [b, 1, *images.shape[-2:]], align_corners=False)
    img = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    # nearest-neighbour masks by one gather (grid_sample over T channels costs as much as a step)
    h, w = images.shape[-2:]
    px = ((grid[..., 0] + 1) * w - 1) / 2
    py = ((grid[..., 1] + 1) * h - 1) / 2
    ix, iy = px.round().long(), py.round().long()
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    flat = (iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).view(b, 1, -1).expand(-1, target.shape[1], -1)
    tgt = target.flatten(2).gather(2, flat).view_as(target) * inside[:, None].to(target.dtype)
    return img, torch.where(on[:, None, None, None], tgt, target)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, S, S) with ``sigma`` pixels (< 0.3: unchanged)."""
    radius = int(math.ceil(2.5 * sigma))
    if sigma < 0.3 or radius < 1:
        return x
    offs = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (offs / sigma) ** 2)
    k = k / k.sum()
    y = F.conv2d(F.pad(x[:, None], (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))[:, 0]


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(..., S, S) moved by (dy, dx) pixels, zeros where nothing moved in (no wrap-around)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def copy_paste(images: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, p: float,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste structures between the frames of a batch (see the module doc).

    Each frame, with probability ``p``, takes one structure of another frame (a class present
    there that the frame's own dataset does not label, so no label of the frame is
    contradicted), moved by a random shift that keeps it whole and at least ``PASTE_IN_VIEW``
    inside the frame's field of view (non-zero pixels; ``PASTE_TRIES`` placements are tried).
    The frame's other structures lose the pixels the paste covers.

    Args:
        images: (B, S, S) uint8; target: (B, T, S, S) float binary; valid: (B, T) bool.
        gen: CPU generator (every random draw comes from it, whatever is pasted).
    Returns:
        images, target, valid (new tensors; ``valid`` gains the pasted classes).
    """
    b, s = target.shape[0], target.shape[-1]
    if p <= 0 or b < 2:
        return images, target, valid
    on = torch.rand(b, generator=gen) < p
    source = (torch.arange(b) + 1 + torch.randint(b - 1, (b,), generator=gen)) % b   # another frame
    picks = torch.rand(b, generator=gen)
    shifts = torch.rand((b, PASTE_TRIES, 2), generator=gen)
    if not on.any():
        return images, target, valid
    src_images, src_target = images, target          # structures are taken from the batch as drawn
    images, target, valid = images.clone(), target.clone(), valid.clone()
    present = (valid & (target.flatten(2).amax(-1) > 0)).cpu()
    free = ~valid.cpu()
    for i in torch.nonzero(on).flatten().tolist():
        j = int(source[i])
        classes = torch.nonzero(present[j] & free[i]).flatten()
        if len(classes) == 0:
            continue
        c = int(classes[min(int(picks[i] * len(classes)), len(classes) - 1)])
        mask = src_target[j, c] > 0.5
        rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        fov = images[i] > 0
        for u, v in shifts[i].tolist():
            dy = int(-y0 + u * (s - 1 - y1 + y0))
            dx = int(-x0 + v * (s - 1 - x1 + x0))
            moved = _shifted(mask, dy, dx)
            if (moved & fov).sum() < PASTE_IN_VIEW * moved.sum():
                continue
            # opaque inside, feathered over the mask's own edge pixels (no halo outside it)
            alpha = torch.where(moved, _blur(moved.float()[None], 0.7)[0].clamp(min=0.5), 0.0)
            pixels = _shifted(src_images[j].float(), dy, dx)
            images[i] = (alpha * pixels + (1 - alpha) * images[i].float()).round().clamp(0, 255).to(images.dtype)
            target[i] = target[i] * (~moved).to(target.dtype)
            target[i, c] = moved.to(target.dtype)
            valid[i, c] = True
            break
    return images, target, valid


def domain_randomise(images: torch.Tensor, target: torch.Tensor, cfg: AugmentConfig,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomise a batch (see the module doc).

    Args:
        images: (B, S, S) uint8 frames; target: (B, T, S, S) float binary masks (same device).
        gen: CPU generator (every random draw comes from it).
    Returns:
        images (B, S, S) uint8 and target (B, T, S, S) float, on the input device.
    """
    b, s = images.shape[0], images.shape[-1]
    if cfg.p <= 0 or b == 0:
        return images, target
    on = torch.rand(b, generator=gen) < cfg.p
    x, target = _geometry(images.float() / 255, target, cfg, on.to(images.device), gen)
    fov = x > 0
    scale = s / 256
    gain = torch.where(on, _uniform(b, *cfg.gain, gen), 1.0)
    ramp = torch.where(on, _uniform(b, -cfg.ramp, cfg.ramp, gen), 0.0)
    gamma = torch.where(on, torch.exp(_uniform(b, math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), gen)), 1.0)
    depth = torch.linspace(-0.5, 0.5, s, device=x.device)[None, :, None]
    x = x * (gain.to(x.device)[:, None, None] * (1 + ramp.to(x.device)[:, None, None] * depth)).clamp(min=0.05)
    x = x.clamp(0, 1) ** gamma.to(x.device)[:, None, None]
    # speckle grain and blur: one size per batch (frame-wise strengths), drawn like the rest
    grain = float(_uniform(1, *cfg.grain, gen)) * scale
    side = max(4, int(round(s / grain)))
    noise = torch.randn((b, 1, side, side), generator=gen).to(x.device)
    noise = F.interpolate(noise, size=(s, s), mode="bilinear", align_corners=False)[:, 0]
    noise = noise / noise.flatten(1).std(1).clamp(min=1e-6)[:, None, None]
    sd = torch.where(on, _uniform(b, 0, cfg.speckle, gen), 0.0).to(x.device)
    x = x * torch.exp(sd[:, None, None] * noise - 0.5 * sd[:, None, None] ** 2)
    x = _blur(x, float(_uniform(1, 0, cfg.blur, gen)) * scale)
    x = torch.where(fov, x, torch.zeros_like(x))
    out = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return torch.where(on.to(images.device)[:, None, None], out, images), target
