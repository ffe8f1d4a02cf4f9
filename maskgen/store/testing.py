"""Small synthetic mask stores for tests and benchmarks: textured frames with elliptical anatomy.

Written through ``maskgen.store.writer`` with ``maskgen.store.format.manifest_row``, the
functions ``maskgen run``'s workers use, so a synthetic store is a store like any other.
"""

from __future__ import annotations

import os

import numpy as np

from maskgen.store.format import manifest_row, pack_masks, store_attributes
from maskgen.store.writer import create_store, write_manifest, write_region


def synthetic_frames(n: int, size: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """images (n, S, S) uint8, masks (n, K, S, S) bool (disjoint ellipses), counts (n,) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n, size, size), np.uint8)
    masks = np.zeros((n, k, size, size), bool)
    counts = rng.integers(1, min(k, 4) + 1, size=n).astype(np.uint8)
    for i in range(n):
        img = 40 + 30 * rng.random((size, size))
        taken = np.zeros((size, size), bool)
        for j in range(counts[i]):
            cy, cx = rng.uniform(0.2, 0.8, 2)
            ry, rx = rng.uniform(0.08, 0.3, 2)
            m = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1) & ~taken
            taken |= m
            masks[i, j] = m
            img[m] = 60 + 40 * j + 20 * rng.random(int(m.sum()))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
        # an ellipse wholly inside earlier ones leaves its slot empty: a store never counts an
        # empty mask (verify flags it), so the non-empty masks move up and the count drops
        kept = [j for j in range(counts[i]) if masks[i, j].any()]
        if len(kept) < counts[i]:
            masks[i, :len(kept)] = masks[i, kept].copy()
            masks[i, len(kept):] = False
            counts[i] = len(kept)
    return images, masks, counts


def make_synthetic_store(path: str | os.PathLike, n: int = 32, size: int = 64, k: int = 16,
                         chunk: int = 8, seed: int = 0, failed: tuple[int, ...] = (),
                         lpsam_sha256: str = "0" * 64) -> None:
    """Write STORE at ``path`` with n frames; rows in ``failed`` get status failed, no mask."""
    images, masks, counts = synthetic_frames(n, size, k, seed)
    for r in failed:
        masks[r] = False
        counts[r] = 0
    create_store(path, n, size, k, store_attributes(k, size, lpsam_sha256, {"synthetic": True}), chunk=chunk)
    scores = np.where(np.arange(k)[None] < counts[:, None], 0.9, np.nan).astype(np.float32)
    write_region(path, 0, {"images": images, "masks": pack_masks(masks), "scores": scores, "counts": counts})
    rows = [manifest_row(f"synthetic/frame{i:05d}.png#0", i, "synthetic", f"frame{i:05d}.png", f"g{i // 4}", 0,
                         (size, size), "synthetic failure" if i in failed else "", int(counts[i]),
                         0.9 if counts[i] else float("nan"))
            for i in range(n)]
    write_manifest(path, rows)
