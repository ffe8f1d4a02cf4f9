"""Mask-pooled FPN outputs without the FPN's 3x3 output convolutions at full resolution.

During pre-training the FPN's output maps are only ever mask-pooled (``masks.mask_pool``: the
mean feature over the cells of each drawn anatomy). The output convolution of every level is
linear, so pooling commutes with it:

    M @ conv3x3(x) = sum_k W_k (M shifted by offset k) @ x + bias * rowsum(M)

with M the pooling matrix (D rows over the h*w cells), W_k the (O, C) kernel tap at offset k of
the 3 x 3 window (zero padding: cells outside the map contribute nothing). The 3 x 3
convolution of the finest level (256 channels at stride 4) costs about as much as the whole
ResNet-18 backbone; pooled first it becomes two small matrix products (about 10x fewer
operations), with the same value and the same gradients up to float rounding.
``tests/pretrain/test_fpn_pool.py`` checks both against ``Encoder`` + ``mask_pool``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.masks import mask_pool


def _plain_3x3(block: nn.Module) -> nn.Conv2d | None:
    """The Conv2d of an FPN output block when it is exactly one 3x3 / stride 1 / padding 1
    convolution (torchvision's ``FeaturePyramidNetwork`` without a norm layer); else None."""
    mods = list(block) if isinstance(block, nn.Sequential) else [block]
    if len(mods) != 1 or not isinstance(mods[0], nn.Conv2d):
        return None
    conv = mods[0]
    plain = (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
             and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")
    return conv if plain else None


def conv3x3_pooled(x: torch.Tensor, matrix: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``mask_pool(conv(x), matrix)`` without ``conv(x)``: x (n, C, h, w), matrix (n, D, h*w),
    conv a plain 3x3 convolution C -> O -> (n, D, O)."""
    n, c, h, w = x.shape
    d = matrix.shape[1]
    m = matrix.reshape(n, d, h, w).to(x.dtype)
    pad = F.pad(m, (1, 1, 1, 1))
    # tap (ky, kx) reads x at (y + ky - 1, x + kx - 1): the pooling weights move the other way
    shifted = torch.stack([pad[:, :, 2 - ky:2 - ky + h, 2 - kx:2 - kx + w]
                           for ky in range(3) for kx in range(3)], 2)       # (n, D, 9, h, w)
    if x.is_contiguous(memory_format=torch.channels_last):  # (n, h*w, C) as a view, no copy
        cells = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    else:
        cells = x.flatten(2).transpose(1, 2)
    taps = shifted.reshape(n, d * 9, h * w) @ cells                         # (n, D*9, C)
    weight = conv.weight.to(x.dtype).permute(0, 2, 3, 1).reshape(conv.out_channels, 9 * c)  # (O, 9*C)
    out = (taps.reshape(n * d, 9 * c) @ weight.t()).view(n, d, -1)
    if conv.bias is not None:
        out = out + m.sum((2, 3))[..., None] * conv.bias.to(out.dtype)
    return out


def pooled_pyramid(encoder: nn.Module, x: torch.Tensor, matrices: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[mask_pool(f, m) for f, m in zip(encoder(x), matrices)]`` for a ``model.Encoder``
    (timm body + torchvision FPN), computed without the output convolutions' full maps.

    x (n, 3, R, R), matrices S <= 4 per-scale pooling matrices (n, D, h*w), coarsest first
    -> S tensors (n, D, fpn_dim). Levels finer than the S-th are not computed at all (their
    maps were discarded before). An output block that is not a plain 3x3 convolution is run
    in full and pooled after.
    """
    fpn = encoder.fpn
    feats = encoder.body(x)                                                  # finest first
    if not 1 <= len(matrices) <= len(feats):
        raise ValueError(f"{len(matrices)} pooling matrices for {len(feats)} FPN levels")
    inner = None
    out = []
    for s, mat in enumerate(matrices):
        idx = len(feats) - 1 - s
        lateral = fpn.inner_blocks[idx](feats[idx])
        inner = lateral if inner is None else lateral + F.interpolate(inner, size=lateral.shape[-2:],
                                                                      mode="nearest")
        conv = _plain_3x3(fpn.layer_blocks[idx])
        if conv is None:
            out.append(mask_pool(fpn.layer_blocks[idx](inner), mat))
        else:
            out.append(conv3x3_pooled(inner, mat, conv))
    return out
