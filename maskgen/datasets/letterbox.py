"""Bringing frames and label maps to a square working resolution.

Ultrasound frames come in every aspect ratio (fan-shaped sectors, wide linear fields).
``letterbox`` keeps the aspect ratio and pads with zeros (black, like the area outside a
sector), so anatomy is never stretched; ``Letterbox`` records the placement so that masks
can be mapped back to the original frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Letterbox:
    """Placement of an (H, W) frame inside an S x S square: scaled to (h, w) at (top, left)."""

    size: int
    height: int
    width: int
    top: int
    left: int
    h: int
    w: int

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> Letterbox:
        if height <= 0 or width <= 0:
            raise ValueError(f"frame of size {height}x{width} cannot be letter-boxed")
        scale = size / max(height, width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        return cls(size, height, width, (size - h) // 2, (size - w) // 2, h, w)


def letterbox(image: np.ndarray, size: int, nearest: bool = False) -> tuple[np.ndarray, Letterbox]:
    """(H, W) uint8 -> (size, size) uint8 with the frame centred, aspect kept, zero padding.

    ``nearest=True`` for label maps (no new label values); bilinear (antialiased) otherwise.
    """
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) frame, got shape {image.shape}")
    box = Letterbox.fit(image.shape[0], image.shape[1], size)
    resample = Image.NEAREST if nearest else Image.BILINEAR
    scaled = np.asarray(Image.fromarray(image).resize((box.w, box.h), resample))
    out = np.zeros((size, size), dtype=image.dtype)
    out[box.top:box.top + box.h, box.left:box.left + box.w] = scaled
    return out, box


def unletterbox(mask: np.ndarray, box: Letterbox) -> np.ndarray:
    """(size, size) label map -> (H, W) of the original frame (nearest neighbour)."""
    crop = mask[box.top:box.top + box.h, box.left:box.left + box.w]
    return np.asarray(Image.fromarray(crop).resize((box.width, box.height), Image.NEAREST))
