"""One (task, fold, method, seed, protocol) cell: split, train, test once, store atomically.

A cell's result is a small JSON file, ``OUT/cells/<task>/<method>/seed<S>-fold<F>.json`` for
fine-tuning and ``.../<protocol>-seed<S>-fold<F>.json`` for the other protocols
(``evaluate.protocols``), + ``.npz`` with the overlay frames of fold 0 (fine-tuning; for
segmentation the best, median and worst test frames by Dice). A finished cell whose protocol
(profile fields, protocol, fold assignment, backbone and FPN sha256) matches is reused and
never recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluate.backbones import Backbone
from evaluate.metrics import per_frame_segmentation
from evaluate.profiles import Profile
from evaluate.tasks import TaskData
from evaluate.train import Split, fit, make_head, predict
from maskgen.common.files import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellKey:
    task: str
    fold: int
    method: str
    seed: int
    protocol: str = "finetune"

    def path(self, out_dir: str | Path) -> Path:
        prefix = "" if self.protocol == "finetune" else f"{self.protocol}-"
        return Path(out_dir) / "cells" / self.task / self.method / f"{prefix}seed{self.seed}-fold{self.fold}.json"


def fold_digest(folds: np.ndarray, frame_ids: np.ndarray) -> str:
    """sha256 of the (frame id, fold) assignment: a cell is reused only on the same folds."""
    text = "\n".join(f"{f}\t{k}" for f, k in zip(frame_ids, folds, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()


def cell_protocol(profile: Profile, backbone: Backbone, folds_sha: str, protocol: str = "finetune") -> dict:
    return {"profile": profile.protocol(), "protocol": protocol, "backbone_sha256": backbone.sha256,
            "fpn_sha256": backbone.fpn_sha256, "arch": backbone.arch, "folds_sha256": folds_sha}


def read_cell(key: CellKey, out_dir: str | Path) -> dict | None:
    path = key.path(out_dir)
    return json.loads(path.read_text()) if path.is_file() else None


def is_finished(record: dict | None, protocol: dict) -> bool:
    return bool(record) and record.get("status") == "ok" and record.get("protocol") == protocol


def split_indices(data: TaskData, folds: np.ndarray, fold: int, val_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) frame indices: test = the fold; val = groups carved from the rest.

    The validation groups are drawn with ``maskgen.datasets.folds.grouped_split`` from the training
    folds only (stratified by class for classification), so no group is in two splits.
    """
    from maskgen.datasets.folds import grouped_split

    test = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    labels = data.labels[rest] if data.labels is not None else None
    held = np.asarray(grouped_split(list(data.groups[rest]), val_fraction, seed=seed, labels=labels), dtype=bool)
    return rest[~held], rest[held], test


def run_cell(key: CellKey, data: TaskData, folds: np.ndarray, backbone: Backbone, profile: Profile,
             device: torch.device, protocol: dict, on_epoch=None) -> tuple[dict, dict | None]:
    """Train one cell by its protocol and score its test fold once. Returns (record, overlay or None).

    ``on_epoch(epoch, epochs)`` runs after every fine-tuning epoch (progress)."""
    from evaluate.protocols import applies, frozen_segmentation, label_subset, linear_probe

    if not applies(key.protocol, data.task.kind):
        raise ValueError(f"protocol {key.protocol!r} does not apply to {data.task.kind} task {key.task}")
    started = time.perf_counter()
    split_seed = 1000 * key.seed + key.fold
    train_idx, val_idx, test_idx = split_indices(data, folds, key.fold, profile.val_fraction, split_seed)
    if key.protocol == "low-label":
        train_idx = label_subset(data.groups, data.labels, train_idx, profile.label_fraction, split_seed)
    targets = data.labels if data.labels is not None else data.masks
    train, val = Split.take(data.images, targets, train_idx), Split.take(data.images, targets, val_idx)
    test = Split.take(data.images, targets, test_idx)
    head = make_head(data.task.kind, profile, len(data.class_names))
    if key.protocol == "linear":
        pred, result = linear_probe(backbone, profile, len(data.class_names), train, val, test, device, split_seed)
    elif key.protocol == "frozen":
        pred, result = frozen_segmentation(backbone, profile, train, val, test, device, split_seed)
    else:
        epochs = profile.cls_epochs if data.task.kind == "classification" else profile.seg_epochs
        result = fit(head, backbone, train, val, epochs, device, seed=split_seed,
                     progress=None if on_epoch is None else lambda epoch, _: on_epoch(epoch, epochs))
        pred = predict(head, result.model, test.images, device, profile.batch_size)
    metrics = head.metrics(pred, test.targets.numpy())
    record = {
        "task": key.task, "fold": key.fold, "method": key.method, "seed": key.seed,
        "protocol_name": key.protocol, "status": "ok",
        "metrics": metrics, "best_epoch": result.best_epoch, "history": result.history,
        "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
        "train_groups": len(set(data.groups[train_idx])), "val_groups": len(set(data.groups[val_idx])),
        "fpn": fpn_used(backbone, data.task.kind),
        "seconds": round(time.perf_counter() - started, 2), "device": str(device), "protocol": protocol,
    }
    overlay = None
    if key.fold == 0 and key.protocol == "finetune" and profile.overlay_frames:
        overlay = overlay_frames(test, pred, data.frame_ids[test_idx], data.task.kind, profile.overlay_frames)
    return record, overlay


def fpn_used(backbone: Backbone, kind: str) -> str | None:
    """Which FPN a segmentation cell used: ``pre-trained``, ``step-0`` or ``new``; None for
    classification (no FPN)."""
    if kind == "classification":
        return None
    return backbone.fpn_source if backbone.fpn is not None else "new"


def overlay_frames(test: Split, pred: np.ndarray, frame_ids: np.ndarray, kind: str, n: int) -> dict:
    """Frames kept for the report's overlays: for segmentation the best, median and worst test
    frames by Dice (with their Dice), for classification the first ``n`` test frames."""
    truth = test.targets.numpy()
    if kind == "segmentation":
        dice = per_frame_segmentation(pred, truth)["dice"]
        order = np.argsort(-dice, kind="stable")
        pick = np.asarray([order[0], order[len(order) // 2], order[-1]])
        return {"images": test.images.numpy()[pick], "truth": truth[pick], "pred": pred[pick].astype(np.uint8),
                "frame_ids": frame_ids[pick].astype(str), "dice": dice[pick],
                "rank": np.asarray(["best", "median", "worst"])}
    count = min(n, len(truth))
    return {"images": test.images[:count].numpy(), "truth": truth[:count], "pred": pred[:count].astype(np.uint8),
            "frame_ids": frame_ids[:count].astype(str)}


def write_cell(key: CellKey, out_dir: str | Path, record: dict, overlay: dict | None) -> None:
    """Overlay first, record last: a record on disk means the cell is complete."""
    path = key.path(out_dir)
    if overlay is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **overlay)
        atomic_write_bytes(path.with_suffix(".npz"), buffer.getvalue())
    atomic_write_json(path, record)


def read_overlay(key: CellKey, out_dir: str | Path) -> dict | None:
    path = key.path(out_dir).with_suffix(".npz")
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
