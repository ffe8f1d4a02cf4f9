"""Mask-pooled FPN outputs without the FPN's 3x3 output convolutions at full resolution.

During pre-training the FPN's output maps are only ever mask-pooled (``masks.mask_pool``: the
mean feature over the cells of each drawn anatomy). The output convolution of every level is
linear, so pooling commutes with it:

    M @ conv3x3(x) = sum_k W_k (M shifted by offset k) @ x + bias * rowsum(M)

with M the pooling matrix (D rows over the h*w cells), W_k the (O, C) kernel tap at offset k of
the 3 x 3 window (zero padding: cells outside the map contribute nothing). The 3 x 3
convolution of the finest level (256 channels at stride 4) costs about as much as the whole
ResNet-18 backbone; pooled first it becomes two small matrix products (about 10x fewer
operations), with the same value and the same gradients up to float rounding. At the finest
level the 256-channel inner map itself (1x1 lateral + upsampled coarser map, both linear) is
not formed either: the shifted weights pool the backbone's 64 channels and the coarser map.
``tests/pretrain/test_fpn_pool.py`` checks both against ``Encoder`` + ``mask_pool``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.masks import mask_pool


def single_conv(block: nn.Module, kernel: int) -> nn.Conv2d | None:
    """The Conv2d of an FPN block when it is exactly one ``kernel`` x ``kernel`` / stride 1 /
    'same' zero-padded convolution (torchvision's ``FeaturePyramidNetwork`` without a norm
    layer); else None."""
    mods = list(block) if isinstance(block, nn.Sequential) else [block]
    if len(mods) != 1 or not isinstance(mods[0], nn.Conv2d):
        return None
    conv = mods[0]
    plain = (conv.kernel_size == (kernel, kernel) and conv.stride == (1, 1)
             and conv.padding == (kernel // 2, kernel // 2) and conv.dilation == (1, 1)
             and conv.groups == 1 and conv.padding_mode == "zeros")
    return conv if plain else None


def _plain_3x3(block: nn.Module) -> nn.Conv2d | None:
    return single_conv(block, 3)


def _cells(x: torch.Tensor) -> torch.Tensor:
    """x (n, C, h, w) -> (n, h*w, C); a view for channels-last x."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    return x.flatten(2).transpose(1, 2)


def _shifted(matrix: torch.Tensor, h: int, w: int, dtype) -> torch.Tensor:
    """Pooling matrix (n, D, h*w) -> (n, D*9, h*w): for each 3x3 tap (ky, kx) the weights
    moved so that ``shifted @ cells(x)`` pools x at (y + ky - 1, x + kx - 1) (zero padding)."""
    n, d = matrix.shape[:2]
    pad = F.pad(matrix.reshape(n, d, h, w).to(dtype), (1, 1, 1, 1))
    shifted = torch.stack([pad[:, :, 2 - ky:2 - ky + h, 2 - kx:2 - kx + w]
                           for ky in range(3) for kx in range(3)], 2)       # (n, D, 9, h, w)
    return shifted.reshape(n, d * 9, h * w)


def _through_taps(taps: torch.Tensor, matrix: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """Pooled taps (n, D*9, C) -> the pooled 3x3 convolution (n, D, O) (+ bias x rowsum)."""
    n, d = matrix.shape[:2]
    c = taps.shape[-1]
    weight = conv.weight.to(taps.dtype).permute(0, 2, 3, 1).reshape(conv.out_channels, 9 * c)  # (O, 9*C)
    out = (taps.reshape(n * d, 9 * c) @ weight.t()).view(n, d, -1)
    if conv.bias is not None:
        out = out + matrix.to(out.dtype).sum(-1)[..., None] * conv.bias.to(out.dtype)
    return out


def conv3x3_pooled(x: torch.Tensor, matrix: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``mask_pool(conv(x), matrix)`` without ``conv(x)``: x (n, C, h, w), matrix (n, D, h*w),
    conv a plain 3x3 convolution C -> O -> (n, D, O)."""
    h, w = x.shape[-2:]
    return _through_taps(_shifted(matrix, h, w, x.dtype) @ _cells(x), matrix, conv)


def conv3x3_pooled_top_down(feat: torch.Tensor, lateral: nn.Conv2d, coarser: torch.Tensor,
                            matrix: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The finest level without its 256-channel inner map: ``conv3x3_pooled(inner, ...)`` for
    inner = lateral(feat) + nearest 2x upsampling of ``coarser``. Both terms are linear, so
    the shifted pooling weights go through them instead: over ``feat``'s Cin channels, then the
    1x1 lateral kernel; and summed over 2x2 blocks (the upsampling's transpose) onto ``coarser``.

    feat (n, Cin, h, w), coarser (n, C, h/2, w/2), matrix (n, D, h*w), lateral 1x1 Cin -> C.
    """
    n, _, h, w = feat.shape
    shifted = _shifted(matrix, h, w, feat.dtype)                             # (n, D*9, h*w)
    taps = (shifted @ _cells(feat)) @ lateral.weight.to(feat.dtype).flatten(1).t()   # (n, D*9, C)
    if lateral.bias is not None:
        taps = taps + shifted.sum(-1, keepdim=True) * lateral.bias.to(taps.dtype)
    down = shifted.view(n, -1, h // 2, 2, w // 2, 2).sum((3, 5)).flatten(2)   # (n, D*9, h*w/4)
    taps = taps + down.to(coarser.dtype) @ _cells(coarser)
    return _through_taps(taps, matrix, conv)


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
        conv = _plain_3x3(fpn.layer_blocks[idx])
        lateral_conv = single_conv(fpn.inner_blocks[idx], 1)
        finest = s == len(matrices) - 1
        if (finest and inner is not None and conv is not None and lateral_conv is not None
                and tuple(feats[idx].shape[-2:]) == (2 * inner.shape[-2], 2 * inner.shape[-1])):
            out.append(conv3x3_pooled_top_down(feats[idx], lateral_conv, inner, mat, conv))
            break
        lateral = fpn.inner_blocks[idx](feats[idx])
        inner = lateral if inner is None else lateral + F.interpolate(inner, size=lateral.shape[-2:],
                                                                      mode="nearest")
        if conv is None:
            out.append(mask_pool(fpn.layer_blocks[idx](inner), mat))
        else:
            out.append(conv3x3_pooled(inner, mat, conv))
    return out
