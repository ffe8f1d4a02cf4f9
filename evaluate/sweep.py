"""The sweep: every (task, fold, method, seed, protocol) cell, resumable, then the report.

``run_sweep`` loads each task once, writes its grouped folds (``OUT/folds/<task>.json``),
runs the missing cells (a failing cell is recorded with its reason and the sweep goes on)
and builds ``OUT/report.md``. The dataset opener is injected (default: the registry's
``open_dataset``), so tests run the whole sweep on fake readers.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from evaluate.backbones import Backbone
from evaluate.cells import (
    CellKey,
    cell_protocol,
    fold_digest,
    is_finished,
    read_cell,
    run_cell,
    write_cell,
)
from evaluate.parallel import CellPool
from evaluate.profiles import Profile
from evaluate.protocols import applies
from evaluate.tasks import TaskData, TaskSpec, load_task
from maskgen.common.files import atomic_write_json
from maskgen.common.provenance import write_run_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep covers; written to OUT/sweep.json and read back by ``evaluate report``."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    folds: int
    profile: Profile
    reference: str = "random"
    full_method: str | None = None
    ablations: tuple[str, ...] = ()


def default_opener(dataset: str, root):
    from maskgen.datasets.registry import open_dataset

    return open_dataset(dataset, root)


def make_folds(data: TaskData, k: int) -> np.ndarray:
    """Grouped (and, for classification, stratified) k-fold ids, seed 0 for every method."""
    from maskgen.datasets.folds import grouped_kfold

    n_groups = len(set(data.groups))
    if n_groups < k:
        raise ValueError(f"task {data.task.name}: {n_groups} groups cannot fill {k} folds")
    folds = np.asarray(grouped_kfold(list(data.groups), k=k, seed=0, labels=data.labels), dtype=np.int64)
    for fold in range(k):
        train, test = set(data.groups[folds != fold]), set(data.groups[folds == fold])
        assert not train & test, f"fold {fold} shares groups with its training folds"
    return folds


def _task_info(data: TaskData, folds: np.ndarray) -> dict:
    return {"task": data.task.name, "dataset": data.task.dataset, "kind": data.task.kind,
            "note": data.task.note, "frames": len(data), "groups": len(set(data.groups)),
            "grouped": data.grouped, "group_key": data.group_key, "class_names": list(data.class_names),
            "class_counts": np.bincount(data.labels).tolist() if data.labels is not None else None,
            "fold_sizes": np.bincount(folds).tolist(), "excluded": data.excluded,
            "problems": data.problems[:50], "n_problems": len(data.problems), "status": "ok"}


def prepare_task(task: TaskSpec, out_dir: Path, plan: SweepPlan, root, opener: Callable,
                 progress: bool) -> tuple[TaskData, np.ndarray]:
    """Load the task, make and write its folds (``maskgen.datasets.folds.write_folds``) and task info."""
    from maskgen.datasets.folds import write_folds

    reader = opener(task.dataset, root)
    data = load_task(task, reader, plan.profile.resolution, plan.profile.max_frames, seed=0, progress=progress)
    folds = make_folds(data, plan.folds)
    meta = {"task": task.name, "k": plan.folds, "seed": 0, "grouped": data.grouped,
            "stratified": data.labels is not None, "max_frames": plan.profile.max_frames}
    write_folds(out_dir / "folds" / f"{task.name}.parquet", data.refs, folds, meta)
    atomic_write_json(out_dir / "tasks" / f"{task.name}.json", _task_info(data, folds))
    return data, folds


def run_task_cells(data: TaskData, folds: np.ndarray, backbones: list[Backbone], plan: SweepPlan,
                   out_dir: Path, device: torch.device, progress: bool, workers: int = 1,
                   threads: int = 1) -> dict[str, int]:
    """Run the missing cells of one task (``workers`` at a time, each with ``threads`` torch
    threads, see ``evaluate.parallel``); returns counts of done / reused / failed cells."""
    counts = {"done": 0, "reused": 0, "failed": 0}
    folds_sha = fold_digest(folds, data.frame_ids)
    jobs = []
    protocols = [p for p in plan.profile.protocols if applies(p, data.task.kind)]
    for name in protocols:
        for backbone in backbones:
            for seed in plan.seeds:
                for fold in range(plan.folds):
                    key = CellKey(data.task.name, fold, backbone.name, seed, name)
                    protocol = cell_protocol(plan.profile, backbone, folds_sha, name)
                    previous = read_cell(key, out_dir)
                    if is_finished(previous, protocol):
                        counts["reused"] += 1
                        continue
                    if previous is not None and previous.get("status") == "ok":
                        log.warning("%s: protocol changed since it was computed; recomputing", key)
                    jobs.append((key, backbone, protocol))
    bar = tqdm(total=len(jobs), desc=data.task.name, disable=not progress or not jobs)

    def finish(key: CellKey, protocol: dict, compute: Callable[[], tuple[dict, dict | None]]) -> None:
        try:
            record, overlay = compute()
            counts["done"] += 1
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - per-cell failure policy: record and go on
            log.error("%s failed: %s", key, err)
            record, overlay = {**asdict(key), "status": "failed", "error": f"{type(err).__name__}: {err}",
                               "traceback": traceback.format_exc()[-4000:], "protocol": protocol}, None
            counts["failed"] += 1
        write_cell(key, out_dir, record, overlay)
        bar.set_postfix_str(f"{key.protocol} {key.method} seed {key.seed} fold {key.fold}")
        bar.update(1)

    def on_epoch(key: CellKey, epoch: int, epochs: int) -> None:  # progress inside a cell
        bar.set_postfix_str(f"{key.method} seed {key.seed} fold {key.fold}: epoch {epoch}/{epochs}")

    if workers > 1 and len(jobs) > 1:
        with CellPool(data, folds, backbones, plan.profile, device, min(workers, len(jobs)), threads,
                      on_epoch=on_epoch) as pool:
            for key, protocol, future in pool.run(jobs):
                finish(key, protocol, future.result)
    else:
        for key, backbone, protocol in jobs:
            finish(key, protocol, lambda k=key, b=backbone, p=protocol:
                   run_cell(k, data, folds, b, plan.profile, device, p,
                            on_epoch=lambda epoch, epochs, k=k: on_epoch(k, epoch, epochs)))
    bar.close()
    return counts


def run_sweep(out_dir: str | Path, tasks: list[TaskSpec], backbones: list[Backbone], plan: SweepPlan,
              roots: dict[str, object], device: torch.device, opener: Callable | None = None,
              progress: bool = True, workers: int = 1, threads: int = 1) -> Path:
    """Run (or resume) the sweep and build the report; returns the path of report.md.

    Args:
        roots: dataset name -> its root folder (None: the registry's environment variable).
        opener: ``(dataset, root) -> DatasetReader``; default ``maskgen.datasets.registry.open_dataset``.
        workers / threads: cells run at a time (processes) and torch threads of each; with one
            worker the cells run in this process (its own thread setting applies).
    """
    from evaluate.report import build_report

    out_dir = Path(out_dir)
    opener = opener or default_opener
    write_run_info(out_dir, {"plan": asdict(plan), "roots": {k: str(v) for k, v in roots.items()},
                             "device": str(device)}, seed=list(plan.seeds), name="sweep.json")
    atomic_write_json(out_dir / "backbones.json", [
        {"name": b.name, "arch": b.arch, "path": b.path, "sha256": b.sha256, "provenance": b.provenance,
         "fpn": b.fpn_source, "fpn_sha256": b.fpn_sha256, "fpn_channels": b.fpn_channels}
        for b in backbones])
    for task in tasks:
        try:
            data, folds = prepare_task(task, out_dir, plan, roots.get(task.dataset), opener, progress)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - a missing dataset must not sink the other tasks
            log.info("task %s skipped: %s", task.name, err)
            atomic_write_json(out_dir / "tasks" / f"{task.name}.json", {
                "task": task.name, "dataset": task.dataset, "kind": task.kind, "status": "failed",
                "error": f"{type(err).__name__}: {err}"})
            continue
        counts = run_task_cells(data, folds, backbones, plan, out_dir, device, progress, workers, threads)
        log.info("task %s: %s", task.name, counts)
    return build_report(out_dir)
