"""Writing the anatomy mask store: the only code that creates or fills one.

``create_store`` makes the empty arrays, ``write_region`` fills a chunk-aligned row range of
every array, ``write_part`` records a finished range's manifest rows in ``STORE/.parts/``, and
``assemble_manifest`` joins the parts into ``manifest.parquet``. ``prepare_store`` creates a
store for a job or checks that an existing one was made with the same settings (resume).
The layout is ``maskgen.store.format``'s; every file is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from zarr.codecs import BloscCodec

from maskgen.common.files import atomic_path, atomic_write_json
from maskgen.store.format import (
    AXES,
    EVERY_CHUNK_WRITTEN,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    SCHEMA_NAME,
    ZARR_NAME,
    StoreError,
    manifest_path,
    store_attributes,
)

PARTS_DIR = ".parts"
JOB_MARKER = "job.json"


def part_path(out: str | Path, index: int) -> Path:
    """STORE/.parts/unit-NNNNNN.parquet: the manifest rows of finished unit ``index``."""
    return Path(out) / PARTS_DIR / f"unit-{index:06d}.parquet"


def finished_parts(out: str | Path) -> list[Path]:
    """The part files of the units finished so far, in unit order."""
    return sorted((Path(out) / PARTS_DIR).glob("unit-*.parquet"))


def remove_parts(out: str | Path) -> None:
    if (Path(out) / PARTS_DIR).exists():
        shutil.rmtree(Path(out) / PARTS_DIR)


def write_region(out: str | Path, start: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Write rows [start, start + len) of each named array (``images``, ``masks``, ...) of the
    store at ``out``; the range should be chunk-aligned so that writers never share a chunk."""
    group = zarr.open_group(Path(out) / ZARR_NAME, mode="r+")
    with zarr.config.set(EVERY_CHUNK_WRITTEN):  # a missing chunk file then always means damage
        for name, data in arrays.items():
            group[name][start:start + len(data)] = data


def write_part(out: str | Path, index: int, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Record unit ``index``'s manifest rows, atomically; call it last, once its region is
    written, so that a part file proves its region complete."""
    path = part_path(out, index)
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist([dict(r) for r in rows], schema=MANIFEST_SCHEMA), tmp)
    return path


class StoreMismatchError(StoreError, ValueError):
    """STORE holds a store made with other settings; resuming it would mix two runs."""


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


def write_manifest(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Write the manifest rows (dicts with ``MANIFEST_SCHEMA``'s columns) atomically."""
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=MANIFEST_SCHEMA)
    target = manifest_path(path)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return table


def _normalise(obj):
    return json.loads(json.dumps(obj))


def _differences(have: dict, want: dict) -> list[str]:
    keys = sorted(set(have) | set(want))
    return [f"{k}: store has {have.get(k)!r}, this run asks for {want.get(k)!r}"
            for k in keys if have.get(k) != want.get(k)]


def clear_store(out: Path) -> None:
    """Remove the store at ``out`` (arrays, parts, manifest); other files stay."""
    for name in (ZARR_NAME, PARTS_DIR):
        if (out / name).exists():
            shutil.rmtree(out / name)
    (out / MANIFEST_NAME).unlink(missing_ok=True)


def prepare_store(out: Path, settings: dict, k: int, size: int, chunk: int, shard: int | None,
                  overwrite: bool = False) -> str:
    """Create the store or check that the existing one may be resumed.

    Returns:
        "complete" (manifest present, same settings), "resume" or "created".
    Raises:
        StoreMismatchError: the store at ``out`` was made with other settings.
    """
    settings = _normalise(settings)
    zarr_path, marker = out / ZARR_NAME, out / PARTS_DIR / JOB_MARKER
    if overwrite:
        clear_store(out)
    if zarr_path.exists():
        try:
            attrs = dict(zarr.open_group(zarr_path, mode="r").attrs)
        except Exception:  # noqa: BLE001 -- a store killed while being created
            attrs = {}
        if attrs and attrs.get("schema") != SCHEMA_NAME:
            raise StoreMismatchError(f"{zarr_path} is not an ANAUS mask store; pass --overwrite "
                                     "to replace it or choose another --out")
        done = (out / MANIFEST_NAME).exists()
        if attrs and (done or marker.exists()):
            diffs = _differences(attrs.get("generation", {}), settings)
            if diffs:
                raise StoreMismatchError(f"{out} holds a store made with other settings "
                                         f"({'; '.join(diffs)}); pass --overwrite to replace it "
                                         "or choose another --out")
            return "complete" if done else "resume"
        clear_store(out)  # creation was interrupted: no unit can have finished
    n = settings["frames"]
    create_store(out, n, size, k, store_attributes(k, size, settings["lpsam_checkpoint_sha256"], settings),
                 chunk=chunk, shard=shard)
    atomic_write_json(marker, settings)  # the store exists completely from here on
    return "created"


def assemble_manifest(out: Path, n: int) -> pa.Table:
    """Concatenate the parts, check every row 0..n-1 appears exactly once, write the manifest."""
    parts = finished_parts(out)
    table = pa.concat_tables([pq.read_table(p, schema=MANIFEST_SCHEMA) for p in parts])
    table = table.sort_by("row")
    rows = table.column("row").to_pylist()
    if rows != list(range(n)):
        missing = sorted(set(range(n)) - set(rows))[:5]
        raise StoreError(f"{out}: the parts cover {len(rows)} rows for {n} frames "
                         f"(first missing rows {missing}); rerun to finish the store")
    write_manifest(out, table.to_pylist())
    shutil.rmtree(out / PARTS_DIR)
    return table
