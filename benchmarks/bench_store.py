"""Mask store size and read speed against the paper's layout (a pickled float32 tensor per frame).

Prints bytes per frame (images and masks separately) and the read throughput of frames + K masks
for the Zarr store (bit-packed masks, blosc/zstd, chunked along frames) and for a baseline of one
PNG image + one pickled float32 (masks, S, S) array per frame, written from the same data in the
same run. The pickle exists only inside this benchmark, as the thing to beat.

    .venv/bin/python benchmarks/bench_store.py [--frames 128] [--k 16] [--size 256]
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from PIL import Image

from maskgen.store import open_store, pack_masks, store_attributes, unpack_masks
from maskgen.store.writer import create_store, write_manifest


def synthetic_frames(n: int, k: int, size: int, seed: int = 0):
    """Speckled frames with elliptical anatomy, K slots with 3..K valid masks: (images, masks, counts)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    images = np.zeros((n, size, size), np.uint8)
    masks = np.zeros((n, k, size, size), bool)
    counts = rng.integers(3, k + 1, n)
    for i in range(n):
        img = rng.gamma(2.0, 18.0, (size, size))
        for j in range(counts[i]):
            cy, cx = rng.uniform(0.2, 0.8, 2)
            ry, rx = rng.uniform(0.04, 0.25, 2)
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            masks[i, j] = m
            img[m] += rng.uniform(20, 90)
        images[i] = np.clip(img, 0, 255)
    return images, masks, counts


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_store(out: Path, images, masks, counts, chunk: int) -> None:
    n, k, size = masks.shape[0], masks.shape[1], masks.shape[2]
    create_store(out, n, size, k, store_attributes(k, size, "0" * 64, {"benchmark": True}), chunk=chunk)
    g = zarr.open_group(out / "masks.zarr", mode="r+")
    scores = np.where(np.arange(k)[None] < counts[:, None], 0.9, np.nan).astype(np.float32)
    g["images"][:], g["masks"][:], g["scores"][:], g["counts"][:] = images, pack_masks(masks), scores, counts
    write_manifest(out, [{"frame_id": f"b/{i}#0", "row": i, "dataset": "b", "source": f"{i}.png", "group": "g",
                          "frame_index": 0, "orig_height": size, "orig_width": size, "status": "ok",
                          "reason": "", "mask_count": int(counts[i]), "mean_score": 0.9} for i in range(n)])


def write_baseline(out: Path, images, masks, counts) -> None:
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    for i in range(len(images)):
        Image.fromarray(images[i]).save(out / "images" / f"{i:06d}.png")
        with open(out / "masks" / f"{i:06d}.pkl", "wb") as f:
            pickle.dump(masks[i, : counts[i]].astype(np.float32), f)  # the paper's layout


def read_store(out: Path) -> tuple[float, int]:
    t0, checksum = time.perf_counter(), 0
    store = open_store(out)
    for start in range(0, len(store), store.chunk):
        data = store.read(start, start + store.chunk)
        for b, count in enumerate(data["counts"]):  # unpack the valid slots, as the baseline holds
            checksum += int(unpack_masks(data["masks"][b, :count]).sum()) + int(data["images"][b, 0, 0])
    return time.perf_counter() - t0, checksum


def read_baseline(out: Path, n: int) -> tuple[float, int]:
    t0, checksum = time.perf_counter(), 0
    for i in range(n):
        image = np.asarray(Image.open(out / "images" / f"{i:06d}.png"))
        with open(out / "masks" / f"{i:06d}.pkl", "rb") as f:
            masks = pickle.load(f)  # noqa: S301 -- our own file, baseline only
        checksum += int((masks > 0.5).sum()) + int(image[0, 0])
    return time.perf_counter() - t0, checksum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images, masks, counts = synthetic_frames(args.frames, args.k, args.size)
    n = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        store, base = Path(tmp) / "store", Path(tmp) / "baseline"
        write_store(store, images, masks, counts, args.chunk)
        write_baseline(base, images, masks, counts)
        z = store / "masks.zarr"
        s_img = folder_bytes(z / "images") / n
        s_msk = sum(folder_bytes(z / a) for a in ("masks", "scores", "counts")) / n
        b_img, b_msk = folder_bytes(base / "images") / n, folder_bytes(base / "masks") / n
        print(f"frames {n}, K={args.k}, S={args.size}, {counts.mean():.1f} valid masks per frame")
        print(f"bytes/frame images: store {s_img:,.0f}  png baseline {b_img:,.0f}  (ratio {b_img / s_img:.2f}x)")
        print(f"bytes/frame masks:  store {s_msk:,.0f}  pickle baseline {b_msk:,.0f}  (ratio {b_msk / s_msk:.1f}x)")
        t_store = min(read_store(store)[0] for _ in range(args.repeats))
        t_base = min(read_baseline(base, n)[0] for _ in range(args.repeats))
        assert read_store(store)[1] == read_baseline(base, n)[1], "the two layouts hold different data"
        print(f"read frames+masks: store {n / t_store:,.0f} frames/s  pickle baseline {n / t_base:,.0f} frames/s "
              f"(ratio {t_base / t_store:.1f}x, best of {args.repeats}, warm page cache)")


if __name__ == "__main__":
    main()
