"""Grouped (and stratified) k-fold splits, validation carving, and fold files.

``grouped_kfold`` assigns whole groups (patient, video, recording) to folds, so no group is
ever in two folds; with labels it balances each class across folds (the greedy rule of
scikit-learn's StratifiedGroupKFold: largest-spread groups first, each to the fold that keeps
the per-class proportions most even). Everything is deterministic for a seed. Fold files
are Parquet (frame_id, group, label, fold) with a JSON sidecar of their metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskgen.common.files import atomic_path, atomic_write_json
from maskgen.common.provenance import code_revision
from maskgen.datasets.frames import FrameRef

log = logging.getLogger(__name__)

FOLD_COLUMNS = ("frame_id", "group", "label", "fold")


def _encode(groups: Sequence, labels: Sequence | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group index per item, (G, C) class counts per group, class index per item)."""
    groups = np.asarray([str(g) for g in groups])
    _, group_idx = np.unique(groups, return_inverse=True)
    if labels is None:
        label_idx = np.zeros(len(groups), dtype=np.int64)
    else:
        if len(labels) != len(groups):
            raise ValueError(f"labels has {len(labels)} items but groups has {len(groups)}")
        _, label_idx = np.unique(np.asarray([str(v) for v in labels]), return_inverse=True)
    counts = np.zeros((group_idx.max() + 1 if len(groups) else 0, label_idx.max() + 1 if len(groups) else 1))
    np.add.at(counts, (group_idx, label_idx), 1)
    return group_idx, counts, label_idx


def _group_order(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Groups shuffled, then stably sorted by the spread of their class counts (largest first)."""
    order = rng.permutation(len(counts))
    spread = counts[order].std(axis=1) if counts.shape[1] > 1 else counts[order, 0]
    return order[np.argsort(-spread, kind="stable")]


def grouped_kfold(groups: Sequence, k: int = 5, seed: int = 0, labels: Sequence | None = None) -> np.ndarray:
    """Fold id (0..k-1) per item; no group in two folds; stratified by ``labels`` when given.

    Args:
        groups: (N,) group key of each item (any hashable; compared as strings).
        k: number of folds (>= 2, <= number of groups).
        seed: the assignment is a deterministic function of (groups, labels, k, seed).
        labels: (N,) class of each item, or None.
    Returns:
        (N,) int64 fold ids.
    """
    if not isinstance(k, int | np.integer) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    group_idx, counts, _ = _encode(groups, labels)
    if len(counts) < k:
        raise ValueError(f"k={k} folds need at least {k} groups, found {len(counts)}")
    totals = np.maximum(counts.sum(axis=0), 1)
    fold_counts = np.zeros((k, counts.shape[1]))
    group_fold = np.empty(len(counts), dtype=np.int64)
    eye = np.eye(k)[:, :, None]
    for g in _group_order(counts, np.random.default_rng(seed)):
        candidates = fold_counts[None] + eye * counts[g][None, None]     # (k choices, k folds, C)
        cost = (candidates / totals).std(axis=1).mean(axis=1)            # (k,)
        sizes = fold_counts.sum(axis=1)
        best = np.lexsort((np.arange(k), sizes, np.round(cost, 12)))[0]
        fold_counts[best] += counts[g]
        group_fold[g] = best
    return group_fold[group_idx]


def grouped_split(groups: Sequence, fraction: float, seed: int = 0,
                  labels: Sequence | None = None) -> np.ndarray:
    """Hold out about ``fraction`` of the items, whole groups only (stratified when labelled).

    Returns:
        (N,) bool: True = held out (e.g. validation), False = kept. With fewer than two groups
        nothing is held out (a warning is logged).
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    group_idx, counts, _ = _encode(groups, labels)
    if len(counts) < 2:  # nothing can be held out without emptying the kept side
        log.warning("grouped_split: %d group(s), nothing held out", len(counts))
        return np.zeros(len(group_idx), dtype=bool)
    target = counts.sum(axis=0) * fraction
    held = np.zeros(counts.shape[1])
    out = np.zeros(len(counts), dtype=bool)
    for g in _group_order(counts, np.random.default_rng(seed)):
        before = np.abs(held - target).sum()
        after = np.abs(held + counts[g] - target).sum()
        if after < before:
            out[g] = True
            held += counts[g]
    if not out.any():
        out[_group_order(counts, np.random.default_rng(seed))[-1]] = True
    if out.all():
        out[_group_order(counts, np.random.default_rng(seed))[0]] = False
    return out[group_idx]


def check_no_leak(groups: Sequence, folds: Sequence) -> None:
    """Raise ValueError naming a group that lies in two folds."""
    seen: dict[str, int] = {}
    for g, f in zip(groups, folds, strict=True):
        if seen.setdefault(str(g), int(f)) != int(f):
            raise ValueError(f"group {g!r} is in folds {seen[str(g)]} and {int(f)}")


@dataclass(frozen=True)
class Folds:
    """A fold file: one row per frame, and the sidecar metadata."""

    frame_ids: list[str]
    groups: list[str]
    labels: list[int | None]
    folds: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame_ids)

    def fold_of(self) -> dict[str, int]:
        """frame_id -> fold."""
        return dict(zip(self.frame_ids, self.folds.tolist(), strict=True))


def sidecar_path(path: str | os.PathLike) -> Path:
    """``folds.parquet`` -> ``folds.json``."""
    return Path(path).with_suffix(".json")


def write_folds(path: str | os.PathLike, refs: Sequence[FrameRef], folds: Sequence[int],
                meta: dict | None = None) -> Path:
    """Write ``path`` (Parquet: frame_id, group, label, fold) and its JSON sidecar, atomically.

    The sidecar holds ``meta`` plus counts per fold and the code revision. Raises ValueError if
    the lengths differ or a group lies in two folds.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folds = np.asarray(folds, dtype=np.int64)
    if len(folds) != len(refs):
        raise ValueError(f"{len(folds)} fold ids for {len(refs)} frames")
    groups = [r.group for r in refs]
    check_no_leak(groups, folds)
    table = pa.table({
        "frame_id": pa.array([r.frame_id for r in refs], pa.string()),
        "group": pa.array(groups, pa.string()),
        "label": pa.array([r.label for r in refs], pa.int64()),
        "fold": pa.array(folds, pa.int64()),
    })
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    info = dict(meta or {})
    info.update(frames=len(refs), groups=len(set(groups)), code_revision=code_revision(),
                frames_per_fold={int(f): int((folds == f).sum()) for f in np.unique(folds)},
                columns=list(FOLD_COLUMNS))
    atomic_write_json(sidecar_path(path), info)
    return path


def read_folds(path: str | os.PathLike) -> Folds:
    """Read a fold file written by ``write_folds`` (checks columns and group leakage)."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = set(FOLD_COLUMNS) - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: not a fold file, missing columns {sorted(missing)}")
    cols = table.to_pydict()
    side = sidecar_path(path)
    meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    folds = np.asarray(cols["fold"], dtype=np.int64)
    check_no_leak(cols["group"], folds)
    return Folds(cols["frame_id"], cols["group"], cols["label"], folds, meta)
