"""The unit of work of ``maskgen run``: one chunk-aligned range of frames, start to finish.

``process_unit`` loads the unit's frames, letter-boxes them to the store resolution, runs the
predictor in batches, post-processes, writes the unit's region of every array and then, as
the last step, an atomic part file with the unit's manifest rows (``STORE/.parts/``), both
through ``maskgen.store.writer``. A part file therefore proves that its region is complete;
a unit killed before it is simply redone.

The same function runs in-process (one worker) or on dask workers. Each process keeps its
reader and predictor in a small cache, so a worker loads the predictor once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maskgen.datasets.framecheck import frame_problem
from maskgen.datasets.frames import FrameRef
from maskgen.generate.inference import predict_batch, worker_device
from maskgen.generate.postprocess import frame_regions
from maskgen.generate.postprocess_batched import run_postprocess
from maskgen.store.format import STATUS_FAILED, manifest_row, pack_masks
from maskgen.store.writer import write_part, write_region

if TYPE_CHECKING:
    from maskgen.datasets.letterbox import Letterbox

log = logging.getLogger(__name__)

_CACHE: dict = {}


@dataclass(frozen=True)
class WorkUnit:
    """Rows [start, stop) of the store and the frames that fill them, in row order."""

    index: int
    start: int
    stop: int
    refs: tuple[FrameRef, ...]


@dataclass(frozen=True)
class UnitResult:
    index: int
    frames: int
    failed: int
    masks: int


def check_frame(image, min_side: int, max_aspect: float) -> str | None:
    """Why a decoded frame cannot go into the store (``maskgen.datasets.framecheck.frame_problem``)."""
    return frame_problem(image, min_side, max_aspect)


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _row(ref: FrameRef, row: int, shape=(0, 0), reason: str = "") -> dict:
    return manifest_row(ref.frame_id, row, ref.dataset, ref.source, ref.group, ref.index, shape, reason)


def _load_frames(unit: WorkUnit, reader, job) -> tuple[list[dict], list[tuple[int, np.ndarray, Letterbox]]]:
    """Rows for every frame (failed ones final) and, for the good ones, (position in the unit,
    letter-boxed (S, S) image, its ``Letterbox`` placement)."""
    from maskgen.datasets.letterbox import letterbox

    rows, good = [], []
    for i, ref in enumerate(unit.refs):
        row = unit.start + i
        try:
            image = reader.load(ref).image
        except Exception as err:  # noqa: BLE001 -- per-frame failure policy: record, go on
            reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
            log.warning("frame %s failed to load: %s", ref.frame_id, reason)
            rows.append(_row(ref, row, reason=f"unreadable: {reason}"))
            continue
        reason = check_frame(image, job.min_side, job.max_aspect)
        shape = image.shape if isinstance(image, np.ndarray) and image.ndim == 2 else (0, 0)
        rows.append(_row(ref, row, shape, reason=reason or ""))
        if reason is None:
            good.append((i, *letterbox(image, job.size)))
    return rows, good


def process_unit(unit: WorkUnit, job, checkpoint_sha256: str) -> UnitResult:
    """Fill rows [unit.start, unit.stop) of the store at ``job.out`` and write the unit's part.

    Args:
        job: a ``maskgen.generate.job.MaskJob`` (reader and predictor specs, settings).
        checkpoint_sha256: the sha256 recorded in the store; the loaded predictor must match.
    """
    reader = _cached(("reader", job.reader), job.reader.open)
    device = worker_device(job.device, job.workers_per_gpu)
    predictor = _cached(("predictor", job.predictor, str(device)), lambda: job.predictor.load(device))
    if getattr(predictor, "sha256", checkpoint_sha256) != checkpoint_sha256:
        raise RuntimeError(f"predictor sha256 {predictor.sha256} differs from the store's "
                           f"{checkpoint_sha256}: the checkpoint changed during the run")
    n, k, s = unit.stop - unit.start, job.post.k, job.size
    images = np.zeros((n, s, s), np.uint8)
    masks = np.zeros((n, k, s, s // 8), np.uint8)
    scores = np.full((n, k), np.nan, np.float32)
    counts = np.zeros((n,), np.uint8)
    rows, good = _load_frames(unit, reader, job)
    for b in range(0, len(good), job.batch_size):
        batch = good[b:b + job.batch_size]
        batch_images = np.stack([img for _, img, _ in batch])
        probs, batch_scores = predict_batch(predictor, batch_images, device, s)
        regions = frame_regions([box for _, _, box in batch], s)  # no masks in the padding
        results = run_postprocess(job.postprocess, probs, batch_scores, job.post, regions,
                                  getattr(predictor, "candidate_priority", None))
        for (i, img, _), (m, sc) in zip(batch, results, strict=True):
            images[i], counts[i] = img, len(m)
            masks[i, : len(m)], scores[i, : len(m)] = pack_masks(m), sc
            rows[i]["mask_count"] = len(m)
            rows[i]["mean_score"] = float(np.mean(sc, dtype=np.float64)) if len(m) else math.nan
    write_region(job.out, unit.start, {"images": images, "masks": masks, "scores": scores, "counts": counts})
    write_part(job.out, unit.index, rows)  # last: proves the region is done
    failed = sum(r["status"] == STATUS_FAILED for r in rows)
    return UnitResult(unit.index, n, failed, int(counts.sum()))
