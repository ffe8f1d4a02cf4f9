"""Reading the anatomy mask store: what stage two (``pretrain``) and ``evaluate`` open.

``open_store(STORE)`` checks the schema version and that no chunk file is missing, and returns
a ``MaskStore`` (the Zarr arrays, their attributes, the manifest); ``MaskStore.read`` streams
rows. The layout is ``maskgen.store.format``'s. Nothing here imports torch or SAM: stage two
reads the store through this module alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from maskgen.store.format import (
    ARRAY_NAMES,
    SCHEMA_VERSION,
    STATUS_OK,
    ZARR_NAME,
    StoreChunkError,
    StoreError,
    StoreNotFoundError,
    manifest_path,
)


def read_manifest(path: str | os.PathLike) -> pa.Table:
    target = manifest_path(path)
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
