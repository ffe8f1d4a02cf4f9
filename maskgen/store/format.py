"""The mask store's format: names, schema, axes, manifest columns, attributes, mask packing.

Layout (``STORE/``)::

    masks.zarr/            Zarr v3 group, attributes documented in ``store_attributes``
        images  (N, S, S)      uint8   frame resized to S x S (letter-boxed, see attributes)
        masks   (N, K, S, S/8) uint8   K anatomy masks per frame, bit-packed along x
                                       (``numpy.packbits(..., axis=-1, bitorder="little")``)
        scores  (N, K)         float32 predicted mask quality in [0, 1]; NaN for empty slots
        counts  (N,)           uint8   number of valid mask slots (slots >= count are empty)
    manifest.parquet       one row per frame (``MANIFEST_SCHEMA``), written atomically

Every array is chunked along N only (``chunk`` frames per chunk, optionally grouped in
shards), so a reader streams whole frames and workers write disjoint chunk-aligned regions.
Writing is ``maskgen.store.writer``'s, reading ``maskgen.store.reader``'s; this module only
says what the bytes mean. Nothing here imports torch or SAM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

SCHEMA_NAME = "anaus.mask_store"
SCHEMA_VERSION = 1
ZARR_NAME = "masks.zarr"
MANIFEST_NAME = "manifest.parquet"
STATUS_OK, STATUS_FAILED = "ok", "failed"

AXES = {
    "images": ["frame", "y", "x"],
    "masks": ["frame", "slot", "y", "x_packed"],
    "scores": ["frame", "slot"],
    "counts": ["frame"],
}

MANIFEST_SCHEMA = pa.schema([
    ("frame_id", pa.string()),        # stable: "<dataset>/<source>#<frame_index>"
    ("row", pa.int64()),              # row in the arrays (axis 0)
    ("dataset", pa.string()),
    ("source", pa.string()),          # path relative to the dataset root
    ("group", pa.string()),           # patient / video / recording
    ("frame_index", pa.int32()),      # index inside the source (0 for still images)
    ("orig_height", pa.int32()),
    ("orig_width", pa.int32()),
    ("status", pa.string()),          # "ok" or "failed"
    ("reason", pa.string()),          # failure reason ("" when ok)
    ("mask_count", pa.int32()),
    ("mean_score", pa.float32()),     # NaN when no mask
])


class StoreError(Exception):
    """The store is missing, inconsistent, or not of this schema."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    pass


class StoreChunkError(StoreError):
    """A chunk file of the store is missing or cannot be decoded (the message names it)."""


ARRAY_NAMES = ("images", "masks", "scores", "counts")
# new stores write every chunk, also one that holds only fill values (zarr skips those by
# default, and a missing chunk then reads as zeros): a missing chunk file is always damage
EVERY_CHUNK_WRITTEN = {"array.write_empty_chunks": True}


def store_attributes(k: int, size: int, lpsam_sha256: str, settings: Mapping[str, Any]) -> dict:
    """Group attributes that document the store for anyone opening it with plain Zarr."""
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "k": int(k),
        "size": int(size),
        "axes": AXES,
        "masks_encoding": "bit-packed along x: numpy.packbits(mask, axis=-1, bitorder='little')",
        "scores": "predicted mask quality in [0, 1]; NaN for empty slots (slot >= counts[frame])",
        "images": "uint8 grayscale, resized keeping aspect ratio and zero-padded to size x size",
        "lpsam_checkpoint_sha256": lpsam_sha256,
        "generation": dict(settings),
        "manifest": MANIFEST_NAME,
        "every_chunk_written": True,
    }


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(..., S, S) bool -> (..., S, S/8) uint8, bit-packed along the last axis."""
    return np.packbits(np.asarray(masks, dtype=bool), axis=-1, bitorder="little")


def unpack_masks(packed: np.ndarray) -> np.ndarray:
    """(..., S, S/8) uint8 -> (..., S, S) bool (numpy)."""
    return np.unpackbits(packed, axis=-1, bitorder="little").astype(bool)


def unpack_masks_torch(packed):
    """(..., S, S/8) uint8 tensor -> (..., S, S) bool tensor, on the tensor's own device."""
    import torch

    bits = torch.arange(8, device=packed.device, dtype=torch.uint8)
    out = (packed.unsqueeze(-1) >> bits) & 1
    return out.flatten(-2).bool()




def manifest_path(path) -> Path:
    """STORE/manifest.parquet for a STORE folder; a path ending in .parquet is taken as is."""
    return Path(path) / MANIFEST_NAME if Path(path).suffix != ".parquet" else Path(path)


def manifest_row(frame_id: str, row: int, dataset: str, source: str, group: str, frame_index: int,
                 shape: tuple[int, int] = (0, 0), reason: str = "", count: int = 0,
                 mean_score: float = math.nan) -> dict:
    """One manifest row (``MANIFEST_SCHEMA``'s columns); a non-empty ``reason`` makes it failed.

    ``shape``: the frame's original (height, width), (0, 0) when it could not be decoded.
    """
    return {
        "frame_id": frame_id, "row": int(row), "dataset": dataset, "source": source,
        "group": group, "frame_index": int(frame_index),
        "orig_height": int(shape[0]), "orig_width": int(shape[1]),
        "status": STATUS_FAILED if reason else STATUS_OK, "reason": reason,
        "mask_count": int(count), "mean_score": float(mean_score),
    }
