"""Corruption of the common region for the core-region prediction objective (vectorised).

The three damage parameters (a, b, g), defaults (0.15, 0.2, 0.05), are defined as follows,
applied in this order to a region x (n, 1, R, R) in [0, 1]:

* a, local pixel shuffling: the region is tiled into ``shuffle_window`` x ``shuffle_window``
  windows; each window, independently with probability a, has its pixels permuted by a
  random permutation (its histogram is kept, its local structure destroyed).
* b, non-linear intensity remapping: every pixel of sample i goes through the monotone curve
  y = x + 4 d_i x (1 - x), d_i ~ U(-b, b); b is the largest shift of mid-grey (x = 1/2) and
  must be below 0.25 for the curve to stay monotone (0 and 1 are fixed points).
* g, in-painting of random blocks: the region is tiled into ``inpaint_block`` x
  ``inpaint_block`` blocks; each block, independently with probability g, is replaced by
  uniform noise in [0, 1] (expected in-painted area fraction g).

Window and block sizes default to about R/28 and R/8 pixels (8 and 28 at 224; the largest
divisors of R not above those).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CorruptionConfig:
    shuffle_p: float = 0.15      # a
    remap_strength: float = 0.2  # b
    inpaint_p: float = 0.05      # g
    shuffle_window: int | None = None  # pixels; None = max(2, R // 28)
    inpaint_block: int | None = None   # pixels; None = max(2, R // 8)

    def __post_init__(self):
        for name in ("shuffle_p", "inpaint_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if not 0.0 <= self.remap_strength < 0.25:
            raise ValueError(f"remap strength b must be in [0, 0.25) (monotone curve), got {self.remap_strength}")


def _windows(r: int, w: int) -> int:
    if r % w:
        raise ValueError(f"region size {r} is not a multiple of the window/block size {w}")
    return r // w


def _divisor_at_most(r: int, w: int) -> int:
    """The largest divisor of r not above w (so windows tile the region exactly)."""
    return next(d for d in range(min(w, r), 0, -1) if r % d == 0)


def pixel_shuffle(x: torch.Tensor, p: float, window: int, gen: torch.Generator) -> torch.Tensor:
    """Permute the pixels inside each window of x (n, 1, R, R) with probability p per window."""
    n, _, r, _ = x.shape
    m = _windows(r, window)
    cols = F.unfold(x, window, stride=window)                     # (n, w*w, m*m)
    keys = torch.rand(cols.shape, generator=gen, device=x.device)
    chosen = torch.rand(n, 1, m * m, generator=gen, device=x.device) < p
    ident = torch.arange(window * window, device=x.device, dtype=keys.dtype).view(1, -1, 1)
    perm = torch.where(chosen, keys, ident / (window * window) - 2).argsort(dim=1)
    cols = cols.gather(1, perm)
    return F.fold(cols, (r, r), window, stride=window)


def intensity_remap(x: torch.Tensor, b: float, gen: torch.Generator) -> torch.Tensor:
    """y = x + 4 d x (1 - x) with one d ~ U(-b, b) per sample of x (n, 1, R, R) in [0, 1]."""
    d = (2 * torch.rand(x.shape[0], 1, 1, 1, generator=gen, device=x.device) - 1) * b
    return x + 4 * d * x * (1 - x)


def inpaint_blocks(x: torch.Tensor, p: float, block: int, gen: torch.Generator) -> torch.Tensor:
    """Replace each block x block tile of x (n, 1, R, R) by uniform noise with probability p."""
    n, _, r, _ = x.shape
    m = _windows(r, block)
    chosen = (torch.rand(n, 1, m, m, generator=gen, device=x.device) < p).to(x.dtype)
    chosen = F.interpolate(chosen, scale_factor=block, mode="nearest").bool()
    noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return torch.where(chosen, noise, x)


def corrupt(x: torch.Tensor, cfg: CorruptionConfig, gen: torch.Generator) -> torch.Tensor:
    """Shuffle (a), remap (b), in-paint (g) x (n, 1, R, R) in [0, 1] -> same shape, in [0, 1]."""
    r = x.shape[-1]
    window = cfg.shuffle_window or _divisor_at_most(r, max(2, r // 28))
    block = cfg.inpaint_block or _divisor_at_most(r, max(2, r // 8))
    x = pixel_shuffle(x, cfg.shuffle_p, window, gen)
    x = intensity_remap(x, cfg.remap_strength, gen)
    return inpaint_blocks(x, cfg.inpaint_p, block, gen).clamp(0, 1)
