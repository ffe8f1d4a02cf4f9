"""Two BYOL views of a batch of frames and their anatomy masks, batched on the device.

Every transform is drawn per sample and applied to the whole batch at once: crops and flips
are per-sample affine grids sampled with ``grid_sample`` (frames bilinear, masks bilinear too,
so a mask becomes its coverage in [0, 1]); blur is a grouped convolution with one Gaussian per
sample; jitter and solarisation are per-sample arithmetic. No Python loop over images.

Coordinates: a crop box is (x0, y0, x1, y1) in the frame's normalised coordinates [-1, 1]
(``align_corners=False``), before flipping. The common region of the two crops is the
intersection of their boxes; it is empty for some pairs (``valid`` False).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViewConfig:
    """BYOL augmentation of one view (grayscale frames: saturation, hue and grayscale are no-ops)."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)   # in pixels at 224, scaled with the resolution
    solarize_p: float = 0.0


def byol_view_configs() -> tuple[ViewConfig, ViewConfig]:
    """BYOL's asymmetric pair: view 1 always blurred; view 2 rarely blurred, sometimes solarised."""
    return ViewConfig(blur_p=1.0, solarize_p=0.0), ViewConfig(blur_p=0.1, solarize_p=0.2)


def sample_crop_boxes(n: int, cfg: ViewConfig, gen: torch.Generator, device) -> torch.Tensor:
    """(n, 4) float boxes (x0, y0, x1, y1) in [-1, 1]: random resized crops (area, aspect)."""
    u = torch.rand(n, 4, generator=gen, device=device)
    area = cfg.crop_scale[0] + (cfg.crop_scale[1] - cfg.crop_scale[0]) * u[:, 0]
    lo, hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    ratio = torch.exp(lo + (hi - lo) * u[:, 1])
    w = torch.sqrt(area * ratio).clamp(max=1.0)     # fraction of the frame's width
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    x0 = -1 + 2 * (1 - w) * u[:, 2]
    y0 = -1 + 2 * (1 - h) * u[:, 3]
    return torch.stack([x0, y0, x0 + 2 * w, y0 + 2 * h], dim=1)


def box_grid(boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Sampling grids (n, size, size, 2) that map each box (n, 4) to a size x size output;
    ``flip`` (n,) bool mirrors the output horizontally."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    sx, sy = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
    sx = torch.where(flip, -sx, sx)
    zero = torch.zeros_like(cx)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1)
    return F.affine_grid(theta, [boxes.shape[0], 1, size, size], align_corners=False)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample x (n, C, S, S) float on grid (n, R, R, 2) -> (n, C, R, R); zeros outside."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def intersect(a: torch.Tensor, b: torch.Tensor, min_side: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Common region of boxes a, b (n, 4) -> (boxes (n, 4), valid (n,) bool).

    ``valid`` is False where the intersection is empty or a side is below ``min_side`` of the
    frame (a region too small to predict anything in); such boxes are replaced by the full frame.
    """
    box = torch.cat([torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])], 1)
    valid = ((box[:, 2] - box[:, 0]) > 2 * min_side) & ((box[:, 3] - box[:, 1]) > 2 * min_side)
    full = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=box.device).expand_as(box)
    return torch.where(valid[:, None], box, full), valid


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Blur x (n, 1, R, R) with one Gaussian per sample (sigma (n,) in pixels) where ``apply``.

    A separable grouped convolution: kernel size about R/10 (23 at 224, always odd).
    """
    n, _, r, _ = x.shape
    k = max(3, int(r * 0.1) // 2 * 2 + 1)
    t = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    kern = kern / kern.sum(1, keepdim=True)
    y = x.reshape(1, n, r, r)
    y = F.pad(y, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    y = F.conv2d(y, kern.view(n, 1, k, 1), groups=n)
    y = F.conv2d(y, kern.view(n, 1, 1, k), groups=n).view(n, 1, r, r)
    return torch.where(apply.view(n, 1, 1, 1), y, x)


def photometric(x: torch.Tensor, cfg: ViewConfig, gen: torch.Generator) -> torch.Tensor:
    """Jitter (brightness then contrast), blur, solarisation of x (n, 1, R, R) in [0, 1]."""
    n, dev = x.shape[0], x.device
    u = torch.rand(n, 6, generator=gen, device=dev)
    jit = (u[:, 0] < cfg.jitter_p).view(n, 1, 1, 1)
    bright = 1 + cfg.brightness * (2 * u[:, 1] - 1)
    contrast = 1 + cfg.contrast * (2 * u[:, 2] - 1)
    y = x * bright.view(n, 1, 1, 1)
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * contrast.view(n, 1, 1, 1) + mean).clamp(0, 1)
    x = torch.where(jit, y, x)
    scale = x.shape[-1] / 224
    sigma = (cfg.blur_sigma[0] + (cfg.blur_sigma[1] - cfg.blur_sigma[0]) * u[:, 3]) * scale
    x = gaussian_blur(x, sigma.clamp(min=1e-3), u[:, 4] < cfg.blur_p)
    sol = (u[:, 5] < cfg.solarize_p).view(n, 1, 1, 1)
    return torch.where(sol & (x >= 0.5), 1 - x, x)


def to_network_input(x: torch.Tensor) -> torch.Tensor:
    """Grayscale (n, 1, R, R) in [0, 1] -> (n, 3, R, R) normalised with ImageNet statistics."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


@dataclass
class ViewPair:
    """Outputs of ``make_views`` (n frames, R = resolution, K mask slots).

    views (2, n, 1, R, R) float in [0, 1]; view_masks (2, n, K, R, R) float coverage in [0, 1];
    region (n, 1, R, R) the clean common region; region_masks (n, K, R, R);
    region_valid (n,) bool; boxes (2, n, 4); flips (2, n) bool.
    """

    views: torch.Tensor
    view_masks: torch.Tensor
    region: torch.Tensor
    region_masks: torch.Tensor
    region_valid: torch.Tensor
    boxes: torch.Tensor
    flips: torch.Tensor


def make_views(frames: torch.Tensor, masks: torch.Tensor, resolution: int, gen: torch.Generator,
               configs: tuple[ViewConfig, ViewConfig]) -> ViewPair:
    """Two augmented views + the clean common region of frames (n, S, S) uint8 and
    masks (n, K, S, S) bool, all on the frames' device; draws from ``gen`` only."""
    n, dev = frames.shape[0], frames.device
    img = frames.unsqueeze(1).float() / 255.0
    msk = masks.float()
    views, vmasks, boxes, flips = [], [], [], []
    for cfg in configs:  # two views, not a loop over images
        box = sample_crop_boxes(n, cfg, gen, dev)
        flip = torch.rand(n, generator=gen, device=dev) < cfg.flip_p
        grid = box_grid(box, flip, resolution)
        views.append(photometric(warp(img, grid), cfg, gen))
        vmasks.append(warp(msk, grid))
        boxes.append(box)
        flips.append(flip)
    common, valid = intersect(boxes[0], boxes[1])
    grid = box_grid(common, torch.zeros(n, dtype=torch.bool, device=dev), resolution)
    return ViewPair(torch.stack(views), torch.stack(vmasks), warp(img, grid), warp(msk, grid),
                    valid, torch.stack(boxes), torch.stack(flips))
