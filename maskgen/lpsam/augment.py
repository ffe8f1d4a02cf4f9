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

    def to_dict(self) -> dict:
        return asdict(self)


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
