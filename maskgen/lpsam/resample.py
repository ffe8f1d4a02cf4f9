"""Bringing official SAM weights (1024x1024 input, 16x16 patches, 64x64 grid) to LP-SAM's grid.

- Patch embedding: ``adjoint_resize_kernel`` maps the PxP kernel w to the pxp kernel B^T w,
  with B the bilinear upsampling of a pxp patch to PxP (``F.interpolate``). Then
  <x, B^T w> = <B x, w> for every pxp patch x, exactly: a token of our frame is the token the
  official kernel computes for the same patch enlarged to SAM's patch size (as if the frame
  were upsampled P/p times), and a flat patch keeps its response (B maps constants to
  constants). It is the adjoint of the resize, one matrix product, no fitting. It is *not*
  FlexiViT's PI-resize, which answers another question: keep the token of an original PxP
  patch once that patch is itself resized to pxp, i.e. w' = pinv(B'^T) w for the resize B'
  from P to p, exact only when p >= P and a least-squares compromise when p < P (our case).
  Our frames are not SAM inputs shrunk: they are ultrasound frames at 256 px, and the question
  is what SAM's kernel would make of their patches at its own scale, which the adjoint answers
  exactly.
- Absolute positional embedding: bilinear (antialiased) resize of the (1, G, G, C) grid.
- Relative-position tables: linear resize along the table (as segment_anything's own
  ``get_rel_pos`` does at run time), stored so that nothing is resized on every forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_operator(src: int, dst: int) -> torch.Tensor:
    """Matrix (dst*dst, src*src) of bilinear resizing of a src x src patch to dst x dst."""
    basis = torch.eye(src * src, dtype=torch.float64).reshape(src * src, 1, src, src)
    out = F.interpolate(basis, size=(dst, dst), mode="bilinear", align_corners=False)
    return out.reshape(src * src, dst * dst).T


def adjoint_resize_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """(O, I, P, P) patch-embedding kernel -> (O, I, size, size).

    The result ``w`` satisfies ``<x, w> == <upsample(x, P), weight>`` for every size x size
    patch ``x``, with ``upsample`` the bilinear resize of ``F.interpolate``.
    """
    o, i, p, q = weight.shape
    if p != q:
        raise ValueError(f"expected a square patch kernel, got {p}x{q}")
    if p == size:
        return weight.clone()
    op = resize_operator(size, p).to(weight.device)  # (p*p, size*size)
    flat = weight.reshape(o * i, p * p).to(torch.float64)
    return (flat @ op).reshape(o, i, size, size).to(weight.dtype)


def resize_pos_embed(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, G, G, C) absolute positional embedding -> (1, grid, grid, C), bilinear, antialiased."""
    if pos.shape[1] == grid and pos.shape[2] == grid:
        return pos.clone()
    x = pos.permute(0, 3, 1, 2).to(torch.float32)
    x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1).to(pos.dtype).contiguous()


def resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """(L, C) relative-position table -> (length, C), linear (segment_anything's rule)."""
    if table.shape[0] == length:
        return table.clone()
    x = table.to(torch.float32).T.unsqueeze(0)  # 1, C, L
    x = F.interpolate(x, size=length, mode="linear")
    return x[0].T.to(table.dtype).contiguous()
