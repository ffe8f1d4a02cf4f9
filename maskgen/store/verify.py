"""``maskgen verify``: the manifest, the arrays and the attributes of a store agree.

Every check adds a precise message to the list of problems; an empty list means the store is
consistent. Every chunk of every array is read (streamed chunk by chunk, so stores larger than
memory are fine): a missing chunk file or one that does not decode is named, and every
counted mask slot must hold a mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from maskgen.store import (
    MANIFEST_SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_OK,
    ZARR_NAME,
    StoreChunkError,
    chunk_files,
    missing_chunks,
    read_manifest,
    read_rows,
)

ARRAYS = {"images": "uint8", "masks": "uint8", "scores": "float32", "counts": "uint8"}


def _check_attributes(group) -> tuple[list[str], int | None, int | None]:
    attrs, problems = dict(group.attrs), []
    if attrs.get("schema") != SCHEMA_NAME:
        problems.append(f"attribute schema is {attrs.get('schema')!r}, expected {SCHEMA_NAME!r}")
    if attrs.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"attribute schema_version is {attrs.get('schema_version')!r}, "
                        f"this code reads {SCHEMA_VERSION}")
    k, size = attrs.get("k"), attrs.get("size")
    for name, value in (("k", k), ("size", size)):
        if not isinstance(value, int) or value < 1:
            problems.append(f"attribute {name} is {value!r}, expected a positive integer")
    if not attrs.get("lpsam_checkpoint_sha256"):
        problems.append("attribute lpsam_checkpoint_sha256 is missing")
    return problems, k if isinstance(k, int) else None, size if isinstance(size, int) else None


def _check_shapes(group, k, size) -> tuple[list[str], int | None]:
    problems, names = [], set(group.array_keys())
    for name, dtype in ARRAYS.items():
        if name not in names:
            problems.append(f"array {name!r} is missing")
        elif str(group[name].dtype) != dtype:
            problems.append(f"array {name} has dtype {group[name].dtype}, expected {dtype}")
    if problems:
        return problems, None
    n = group["images"].shape[0]
    want = {"images": (n, size, size), "masks": (n, k, size, (size or 0) // 8),
            "scores": (n, k), "counts": (n,)}
    for name, shape in want.items():
        if group[name].shape != shape:
            problems.append(f"array {name} has shape {group[name].shape}, expected {shape} "
                            f"(N={n}, K={k}, S={size} from the attributes)")
    return problems, n


def _check_manifest(manifest, n: int) -> list[str]:
    problems = []
    if manifest.schema.names != MANIFEST_SCHEMA.names:
        missing = sorted(set(MANIFEST_SCHEMA.names) - set(manifest.schema.names))
        return [f"manifest columns {manifest.schema.names} differ from the schema (missing {missing})"]
    if manifest.num_rows != n:
        problems.append(f"manifest has {manifest.num_rows} rows, the arrays have {n} frames")
    rows = manifest.column("row").to_numpy()
    uniq, seen = np.unique(rows, return_counts=True)
    if (seen > 1).any():
        problems.append(f"rows listed more than once in the manifest: {uniq[seen > 1][:10].tolist()}")
    missing = np.setdiff1d(np.arange(n), rows)
    if missing.size:
        problems.append(f"{missing.size} array rows have no manifest row (first: {missing[:10].tolist()})")
    outside = rows[(rows < 0) | (rows >= n)]
    if outside.size:
        problems.append(f"manifest rows outside [0, {n}): {outside[:10].tolist()}")
    ids = manifest.column("frame_id").to_pylist()
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        problems.append(f"frame ids listed more than once: {dup}")
    for r in manifest.select(["frame_id", "status", "reason", "mask_count"]).to_pylist():
        if r["status"] not in (STATUS_OK, STATUS_FAILED):
            problems.append(f"{r['frame_id']}: status {r['status']!r} is neither ok nor failed")
        elif r["status"] == STATUS_FAILED and (not r["reason"] or r["mask_count"]):
            problems.append(f"{r['frame_id']}: failed with reason {r['reason']!r} and {r['mask_count']} masks "
                            "(a failed frame needs a reason and no masks)")
        elif r["status"] == STATUS_OK and r["reason"]:
            problems.append(f"{r['frame_id']}: status ok but reason {r['reason']!r}")
    return problems


def _check_chunk(data, start: int, by_row: dict, k: int) -> list[str]:
    problems = []
    for j in range(len(data["counts"])):
        row, count = start + j, int(data["counts"][j])
        entry = by_row.get(row)
        name = entry["frame_id"] if entry else f"row {row}"
        if count > k:
            problems.append(f"{name}: counts is {count}, above K={k}")
            continue
        if entry and entry["mask_count"] != count:
            problems.append(f"{name}: manifest mask_count {entry['mask_count']} != counts array {count}")
        sc = data["scores"][j]
        if not np.isfinite(sc[:count]).all() or ((sc[:count] < 0) | (sc[:count] > 1)).any():
            problems.append(f"{name}: scores of valid slots {sc[:count].tolist()} are not all in [0, 1]")
        if not np.isnan(sc[count:]).all():
            problems.append(f"{name}: scores of empty slots {count}..{k - 1} are not all NaN")
        if data["masks"][j, count:].any():
            problems.append(f"{name}: empty mask slots {count}..{k - 1} hold non-zero pixels")
        empty = [slot for slot in range(count) if not data["masks"][j, slot].any()]
        if empty:
            problems.append(f"{name}: counted mask slots {empty} are empty (counts says {count} masks)")
        if entry and entry["status"] == STATUS_OK and data["images"][j].min() == data["images"][j].max():
            problems.append(f"{name}: status ok but its stored image is blank (every pixel "
                            f"{int(data['images'][j].min())})")
        if entry:
            want = float(np.mean(sc[:count], dtype=np.float64)) if count else np.nan
            got = entry["mean_score"]
            if not (np.isnan(want) and np.isnan(got)) and not abs(got - want) <= 1e-5:
                problems.append(f"{name}: manifest mean_score {got} != mean of its scores {want:.6f}")
    return problems


def _regions(group, quick: int | None) -> list[tuple[int, int]]:
    """Row ranges of the stored objects (chunks or shards), all of them or a spread-out sample."""
    regions = [(a, b) for a, b, _ in chunk_files(group["images"])]
    if quick and len(regions) > quick:
        pick = np.unique(np.linspace(0, len(regions) - 1, quick).round().astype(int))
        regions = [regions[i] for i in pick]
    return regions


def _read_region(path: Path, group, start: int, stop: int) -> tuple[dict, list[str]]:
    """Every array's rows [start, stop); a chunk that does not decode becomes a problem naming it."""
    data, problems = {}, []
    for name in ARRAYS:
        try:
            data[name] = read_rows(path, group, name, start, stop)
        except StoreChunkError as err:
            problems.append(str(err).split("; the store is damaged")[0])
    return data, problems


def verify_store(path: str | Path, max_problems: int = 50, quick: int | None = None) -> list[str]:
    """Check STORE at ``path``; returns the problems found (empty when consistent).

    Every chunk file of every array must exist (``maskgen.store.missing_chunks``) and decode;
    ``quick``: decode only about that many chunks, spread over the store (the file check still
    covers all of them).
    """
    path = Path(path)
    if not (path / ZARR_NAME).exists():
        return [f"no {ZARR_NAME} in {path}"]
    try:
        manifest = read_manifest(path)
    except Exception as err:  # noqa: BLE001 -- report, don't crash
        return [f"manifest unreadable: {err}"]
    try:
        group = zarr.open_group(path / ZARR_NAME, mode="r")
    except Exception as err:  # noqa: BLE001 -- report, don't crash
        return [f"{path / ZARR_NAME} cannot be opened: {type(err).__name__}: {err}"]
    problems, k, size = _check_attributes(group)
    if k is None or size is None:
        return problems
    shape_problems, n = _check_shapes(group, k, size)
    problems += shape_problems
    if n is None or shape_problems:
        return problems
    problems += _check_manifest(manifest, n)
    if manifest.schema.names != MANIFEST_SCHEMA.names:
        return problems
    missing = missing_chunks(path, group, manifest)
    problems += [f"chunk file missing: {path / ZARR_NAME / name / key} (rows {a}..{b - 1}); it reads as zeros"
                 for name, a, b, key in missing]
    by_row = {r["row"]: r for r in
              manifest.select(["row", "frame_id", "status", "mask_count", "mean_score"]).to_pylist()}
    for start, stop in _regions(group, quick):
        if len(problems) >= max_problems:
            problems.append(f"... stopped after {max_problems} problems")
            break
        data, unreadable = _read_region(path, group, start, stop)
        problems += unreadable
        lost = any(a < stop and b > start for _, a, b, _ in missing)
        if not unreadable and not lost:  # rows of a lost chunk would only repeat its problem
            problems += _check_chunk(data, start, by_row, k)
    return problems
