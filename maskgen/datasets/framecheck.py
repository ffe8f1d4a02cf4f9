"""The per-frame failure policy shared by every command that reads frames.

A frame that cannot go into a store, a fine-tuning set or an adaptation set (undecodable,
oversized, tiny, elongated beyond reason, or blank) is a recorded failure with its reason
and path; the command goes on with the other frames. ``frame_problem`` is the one check
(``maskgen run``, ``maskgen adapt`` and ``evaluate sweep`` call it); ``MAX_PIXELS`` is also
checked by the still-image decoder before it decodes anything, so one 20000 x 20000 PNG
costs a header read, not 400 MB.
"""

from __future__ import annotations

import numpy as np

MIN_SIDE = 16            # pixels per side, at least
MAX_ASPECT = 8.0         # longer side / shorter side, at most
MAX_PIXELS = 50_000_000  # about 7000 x 7000; ultrasound frames are far smaller


def oversized(height: int, width: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """The reason an (height, width) frame is too large to decode, or None."""
    if height * width > max_pixels:
        return f"oversized frame ({height}x{width} = {height * width:,} pixels; at most {max_pixels:,} are read)"
    return None


def frame_problem(image, min_side: int = MIN_SIDE, max_aspect: float = MAX_ASPECT,
                  max_pixels: int = MAX_PIXELS) -> str | None:
    """Why a decoded frame cannot be used, or None when it can.

    Args:
        image: what the reader returned as ``Frame.image``; (H, W) uint8 is expected.
    """
    if not isinstance(image, np.ndarray):
        return f"reader returned {type(image).__name__}, not an array"
    if image.ndim != 2:
        return f"odd shape {tuple(image.shape)}: expected an (H, W) grayscale frame"
    h, w = image.shape
    if h == 0 or w == 0:
        return f"empty frame ({h}x{w} pixels)"
    if image.dtype != np.uint8:
        return f"dtype {image.dtype}, expected uint8"
    if reason := oversized(h, w, max_pixels):
        return reason
    if min(h, w) < min_side:
        return f"frame too small ({h}x{w}); needs at least {min_side} pixels per side"
    if max(h, w) / min(h, w) > max_aspect:
        return f"odd aspect ratio ({h}x{w}); at most {max_aspect:g}:1 is accepted"
    lo, hi = int(image.min()), int(image.max())
    if lo == hi:
        return f"blank frame (every pixel is {lo})"
    return None
