"""A small synthetic mask store (tests, benchmarks): textured frames with elliptical anatomy.

Built through maskgen.store's public API, exactly as ``maskgen run`` writes a store.
"""

from __future__ import annotations

import os

import numpy as np


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
    return images, masks, counts


def make_synthetic_store(path: str | os.PathLike, n: int = 32, size: int = 64, k: int = 16,
                         chunk: int = 8, seed: int = 0, failed: tuple[int, ...] = (),
                         lpsam_sha256: str = "0" * 64) -> None:
    """Write STORE at ``path`` with n frames; rows in ``failed`` get status failed, no mask."""
    import zarr

    from maskgen.store import (
        EVERY_CHUNK_WRITTEN,
        STATUS_FAILED,
        STATUS_OK,
        create_store,
        pack_masks,
        store_attributes,
        write_manifest,
    )

    images, masks, counts = synthetic_frames(n, size, k, seed)
    for r in failed:
        masks[r] = False
        counts[r] = 0
    root = create_store(path, n, size, k, store_attributes(k, size, lpsam_sha256, {"synthetic": True}),
                        chunk=chunk)
    scores = np.where(np.arange(k)[None] < counts[:, None], 0.9, np.nan).astype(np.float32)
    with zarr.config.set(EVERY_CHUNK_WRITTEN):
        root["images"][:] = images
        root["masks"][:] = pack_masks(masks)
        root["scores"][:] = scores
        root["counts"][:] = counts
    rows = [{
        "frame_id": f"synthetic/frame{i:05d}.png#0", "row": i, "dataset": "synthetic",
        "source": f"frame{i:05d}.png", "group": f"g{i // 4}", "frame_index": 0,
        "orig_height": size, "orig_width": size,
        "status": STATUS_FAILED if i in failed else STATUS_OK,
        "reason": "synthetic failure" if i in failed else "",
        "mask_count": int(counts[i]), "mean_score": 0.9 if counts[i] else float("nan"),
    } for i in range(n)]
    write_manifest(path, rows)
