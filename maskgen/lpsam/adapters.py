"""Phase 1 modules: bottleneck adapters in the ViT blocks and a parallel convolutional branch.

The official ``ImageEncoderViT`` is used as is (its weights stay frozen); ``EncoderAdapter``
holds the new trainable modules and ``adapted_encoder_forward`` runs the ViT with them:

- in *every* block (windowed and global alike), a bottleneck adapter in series after the
  attention (``x + A(attn(x))``) and one in parallel with the MLP, scaled by s = 0.5
  (``x + mlp(n(x)) + s * A(n(x))``): the serial + scaled-parallel placement of the Medical SAM
  Adapter (Wu et al., 2023). SAMUS, by contrast, adapts only the four global-attention blocks
  and couples its CNN branch to them by cross-branch attention; we do neither;
- a small CNN on the frame (stride = patch size) whose features are *added* to the tokens
  before every block through zero-initialised linear projections (local detail that 8x8
  patches blur), not fused by attention;
- optionally (``detail_channels`` > 0), a detail branch: a small CNN on the frame at the
  resolution of the decoder's mask logits (stride S / m, 4 px for ``tiny``), whose features
  are added, through a zero-initialised projection, to the decoder's upscaled embedding before
  the per-mask dot product (HQ-SAM's fusion of early features, reduced to one additive skip).
  Without it the masks see the frame only through the patch tokens: a 16x16 patch of ``tiny``
  is wider than the phantom's myocardial wall (8-17 px), whose Dice it caps (docs/lpsam.md).

Why this layout: phase 1 has the paper's budget of about 13 M parameters (12.8 M for ViT-B
here), and spreading it over all twelve blocks lets every layer shift toward ultrasound
texture, while additive, zero-initialised injections keep the cost linear in the tokens and
make an untrained adapter leave SAM exactly unchanged (every new output projection starts at
zero), so phase 1 starts from SAM itself.
"""

from __future__ import annotations

import math

import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import window_partition, window_unpartition
from torch import nn
from torch.nn import functional as F


class Adapter(nn.Module):
    """Bottleneck MLP ``dim -> hidden -> dim`` on (..., dim) tokens; output starts at zero."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class ConvBranch(nn.Module):
    """Frame (B, 3, S, S) -> local features (B, C, S/p, S/p) with p = patch size (a power of 2)."""

    def __init__(self, channels: int, patch_size: int, in_chans: int = 3):
        super().__init__()
        stages = int(math.log2(patch_size))
        if 2**stages != patch_size:
            raise ValueError(f"patch_size {patch_size} must be a power of 2 for the conv branch")
        layers: list[nn.Module] = []
        c_in = in_chans
        for i in range(stages):
            c_out = max(channels // 2 ** (stages - 1 - i), 16)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.GELU()]
            c_in = c_out
        layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.GELU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DetailBranch(nn.Module):
    """Frame (B, 3, S, S) -> (B, C_out, S/r, S/r) features at the decoder's mask resolution.

    ``stride`` r (a power of 2, 1 allowed) = S / mask side; ``out_channels`` = the decoder's
    upscaled width (prompt_dim / 8). With ``levels`` L > 1 the branch is a small feature
    pyramid: L - 1 further stages, each halving the resolution and doubling the width, whose
    features come back to the mask resolution top-down (bilinear enlargement, 1x1 lateral
    projection, added), so each mask pixel also sees the texture of its surroundings (2^L times
    the receptive field) and not only the few pixels of one 3x3 stack. The output projection
    starts at zero, so an untrained branch leaves the decoder's masks unchanged.
    """

    def __init__(self, channels: int, out_channels: int, stride: int, in_chans: int = 3, levels: int = 1):
        super().__init__()
        stages = int(math.log2(stride))
        if 2**stages != stride:
            raise ValueError(f"detail stride {stride} must be a power of 2")
        if levels < 1:
            raise ValueError(f"detail levels {levels} must be >= 1")
        layers: list[nn.Module] = []
        c_in = in_chans
        for _ in range(stages):
            layers += [nn.Conv2d(c_in, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.GELU()]
            c_in = channels
        layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.GELU()]
        self.net = nn.Sequential(*layers)
        widths = [channels * 2**level for level in range(levels)]
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_lo, c_hi, 3, stride=2, padding=1), nn.BatchNorm2d(c_hi), nn.GELU(),
                          nn.Conv2d(c_hi, c_hi, 3, padding=1), nn.BatchNorm2d(c_hi), nn.GELU())
            for c_lo, c_hi in zip(widths[:-1], widths[1:], strict=True))
        self.lateral = nn.ModuleList(nn.Conv2d(c_hi, c_lo, 1) for c_lo, c_hi in zip(widths[:-1], widths[1:], strict=True))
        self.proj = nn.Conv2d(channels, out_channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [self.net(x)]  # (B, C * 2^l, m / 2^l, m / 2^l) for l = 0 .. L-1
        for stage in self.down:
            pyramid.append(stage(pyramid[-1]))
        y = pyramid[-1]
        for fine, lateral in zip(reversed(pyramid[:-1]), reversed(self.lateral), strict=True):
            y = fine + lateral(F.interpolate(y, size=fine.shape[-2:], mode="bilinear", align_corners=False))
        return self.proj(y)


class EncoderAdapter(nn.Module):
    """The trainable phase-1 modules for an encoder of ``depth`` blocks of width ``dim`` (and,
    when given, the decoder's ``detail`` branch, trained with them in phase 1)."""

    def __init__(self, dim: int, depth: int, hidden: int, conv_channels: int, patch_size: int,
                 mlp_scale: float = 0.5, detail: DetailBranch | None = None):
        super().__init__()
        self.attn_adapters = nn.ModuleList(Adapter(dim, hidden) for _ in range(depth))
        self.mlp_adapters = nn.ModuleList(Adapter(dim, hidden) for _ in range(depth))
        self.conv_branch = ConvBranch(conv_channels, patch_size)
        self.conv_proj = nn.ModuleList(nn.Linear(conv_channels, dim) for _ in range(depth))
        for proj in self.conv_proj:
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
        self.mlp_scale = mlp_scale
        self.detail = detail


def _adapted_block(block, attn_adapter: Adapter, mlp_adapter: Adapter, x: torch.Tensor,
                   mlp_scale: float) -> torch.Tensor:
    """segment_anything's ``Block.forward`` with the two adapters inserted; x (B, H, W, C)."""
    shortcut = x
    x = block.norm1(x)
    if block.window_size > 0:
        h, w = x.shape[1], x.shape[2]
        x, pad_hw = window_partition(x, block.window_size)
    x = block.attn(x)
    x = x + attn_adapter(x)
    if block.window_size > 0:
        x = window_unpartition(x, block.window_size, pad_hw, (h, w))
    x = shortcut + x
    normed = block.norm2(x)
    return x + block.mlp(normed) + mlp_scale * mlp_adapter(normed)


def adapted_encoder_forward(vit: ImageEncoderViT, adapter: EncoderAdapter | None,
                            x: torch.Tensor) -> torch.Tensor:
    """Run the ViT image encoder with the phase-1 adapters.

    Args:
        vit: segment_anything's image encoder (its own weights untouched).
        adapter: the new modules, or None for the plain encoder.
        x: (B, 3, S, S) normalised frames.
    Returns:
        (B, prompt_dim, S/p, S/p) image embeddings.
    """
    if adapter is None:
        return vit(x)
    local = adapter.conv_branch(x).permute(0, 2, 3, 1)  # B, h, w, C_conv
    tokens = vit.patch_embed(x)
    if vit.pos_embed is not None:
        tokens = tokens + vit.pos_embed
    for i, block in enumerate(vit.blocks):
        tokens = tokens + adapter.conv_proj[i](local)
        tokens = _adapted_block(block, adapter.attn_adapters[i], adapter.mlp_adapters[i], tokens,
                                adapter.mlp_scale)
    return vit.neck(tokens.permute(0, 3, 1, 2))
