"""The anatomy mask store: the contract between stage one (``maskgen run``) and stage two.

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
Nothing here imports torch or SAM: stage two reads the store through this module alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from zarr.codecs import BloscCodec

from maskgen.common.files import atomic_path

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
        "schema": "anaus.mask_store",
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


def create_store(path: str | os.PathLike, n: int, size: int, k: int, attrs: Mapping[str, Any],
                 chunk: int = 64, shard: int | None = None, clevel: int = 5) -> zarr.Group:
    """Create the empty arrays of a store for ``n`` frames (overwrites an existing ``masks.zarr``).

    Args:
        n: number of frames (rows); size: S, a multiple of 8; k: mask slots per frame.
        chunk: frames per chunk; shard: frames per shard (a multiple of ``chunk``) or None.
    """
    if size % 8:
        raise ValueError(f"store size must be a multiple of 8 (bit-packed masks), got {size}")
    if shard is not None and shard % chunk:
        raise ValueError(f"shard ({shard}) must be a multiple of chunk ({chunk})")
    root = zarr.open_group(Path(path) / ZARR_NAME, mode="w", zarr_format=3)
    root.attrs.update(dict(attrs))
    comp = (BloscCodec(cname="zstd", clevel=clevel, shuffle="bitshuffle"),)

    rows = min(chunk, max(n, 1))
    # a shard holds whole chunks, also when the store is smaller than one shard
    shard_rows = None if shard is None else min(shard, -(-max(n, 1) // rows) * rows)

    def arr(name, shape, dtype, fill):
        chunks = (rows,) + shape[1:]
        shards = None if shard_rows is None else (shard_rows,) + shape[1:]
        root.create_array(name, shape=shape, chunks=chunks, shards=shards, dtype=dtype,
                          compressors=comp, fill_value=fill, dimension_names=AXES[name])

    arr("images", (n, size, size), "uint8", 0)
    arr("masks", (n, k, size, size // 8), "uint8", 0)
    arr("scores", (n, k), "float32", float("nan"))
    arr("counts", (n,), "uint8", 0)
    return root


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


def write_manifest(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Write the manifest rows (dicts with ``MANIFEST_SCHEMA``'s columns) atomically."""
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=MANIFEST_SCHEMA)
    target = Path(path) / MANIFEST_NAME if Path(path).suffix != ".parquet" else Path(path)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return table


def read_manifest(path: str | os.PathLike) -> pa.Table:
    target = Path(path) / MANIFEST_NAME if Path(path).suffix != ".parquet" else Path(path)
    if not target.exists():
        raise StoreNotFoundError(f"no manifest at {target}")
    return pq.read_table(target)


@dataclass
class MaskStore:
    """A store opened for reading: the Zarr arrays, their attributes and the manifest."""

    path: Path
    group: zarr.Group
    manifest: pa.Table

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def k(self) -> int:
        return int(self.group.attrs["k"])

    @property
    def size(self) -> int:
        return int(self.group.attrs["size"])

    @property
    def chunk(self) -> int:
        return int(self.group["images"].chunks[0])

    def __len__(self) -> int:
        return int(self.group["images"].shape[0])

    def usable_rows(self) -> np.ndarray:
        """Rows with status ok and at least one valid mask (what pre-training uses), sorted."""
        status = self.manifest.column("status").to_numpy(zero_copy_only=False)
        count = self.manifest.column("mask_count").to_numpy()
        rows = self.manifest.column("row").to_numpy()
        return np.sort(rows[(status == STATUS_OK) & (count > 0)])

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows [start, stop): images (B,S,S) uint8, masks (B,K,S,S/8) uint8 packed,
        scores (B,K) float32, counts (B,) uint8.

        Raises:
            StoreChunkError: a chunk of the range cannot be decoded (named in the message).
        """
        return {name: read_rows(self.path, self.group, name, start, stop) for name in ARRAY_NAMES}


def chunk_files(array) -> list[tuple[int, int, str]]:
    """(first row, end row, key) of every stored object of an array chunked along axis 0 only:
    its shards when sharded, else its chunks. ``key`` is relative to the array's folder."""
    rows = (array.shards or array.chunks)[0]
    encode = array.metadata.chunk_key_encoding.encode_chunk_key
    rest = (0,) * (array.ndim - 1)
    return [(start, min(start + rows, array.shape[0]), encode((i, *rest)))
            for i, start in enumerate(range(0, array.shape[0], rows))]


def read_rows(path: str | os.PathLike, group: zarr.Group, name: str, start: int, stop: int) -> np.ndarray:
    """``group[name][start:stop]``; a decode failure raises ``StoreChunkError`` naming the chunk file."""
    try:
        return group[name][start:stop]
    except Exception as err:  # noqa: BLE001 - codecs raise RuntimeError, ValueError, ...
        keys = [k for a, b, k in chunk_files(group[name]) if a < stop and b > start]
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = ", ".join(f"{Path(path) / ZARR_NAME / name / k}" for k in keys)
        raise StoreChunkError(f"chunk {where} cannot be decoded ({type(err).__name__}: {first}); the store is "
                              f"damaged: `maskgen verify {path}` lists what, `maskgen run --overwrite` "
                              "rebuilds it") from err


def missing_chunks(path: str | os.PathLike, group: zarr.Group, manifest: pa.Table | None
                   ) -> list[tuple[str, int, int, str]]:
    """(array, first row, end row, key) of chunk files that should hold data but are absent
    (a deleted chunk reads as zeros).

    Stores marked ``every_chunk_written`` need every chunk file; older ones need those whose rows
    hold data by the manifest (an ok frame for images, a mask for the other arrays).
    """
    zarr_dir = Path(path) / ZARR_NAME
    every = bool(group.attrs.get("every_chunk_written"))
    status = count = None
    if not every and manifest is not None and manifest.num_rows:
        order = np.argsort(manifest.column("row").to_numpy())
        status = manifest.column("status").to_numpy(zero_copy_only=False)[order] == STATUS_OK
        count = manifest.column("mask_count").to_numpy()[order] > 0
    out = []
    for name in ARRAY_NAMES:
        if name not in group:
            continue
        for start, stop, key in chunk_files(group[name]):
            if (zarr_dir / name / key).exists():
                continue
            if not every:
                holds = status if name == "images" else count
                if holds is None or not holds[start:stop].any():
                    continue
            out.append((name, start, stop, key))
    return out


def open_store(path: str | os.PathLike, check_chunks: bool = True) -> MaskStore:
    """Open STORE (the folder holding masks.zarr and manifest.parquet) for reading.

    ``check_chunks``: refuse a store with missing chunk files (``missing_chunks``; a directory
    listing, no decoding).
    """
    path = Path(path)
    if not (path / ZARR_NAME).exists():
        raise StoreNotFoundError(f"no mask store at {path} (expected {path / ZARR_NAME}); "
                                 "create one with `maskgen run`")
    group = zarr.open_group(path / ZARR_NAME, mode="r")
    version = group.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{path}: store schema version {version!r}, this code reads {SCHEMA_VERSION}")
    manifest = read_manifest(path)
    if check_chunks and (missing := missing_chunks(path, group, manifest)):
        raise StoreChunkError(f"{path}: {len(missing)} chunk file(s) of {ZARR_NAME} are missing (first: "
                              f"{', '.join(f'{a}/{k}' for a, _, _, k in missing[:3])}); they would read as zeros. Run `maskgen verify {path}` "
                              "and rebuild the store with `maskgen run --overwrite`")
    return MaskStore(path=path, group=group, manifest=manifest)
