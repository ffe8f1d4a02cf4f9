"""``maskgen run`` as a library: plan, (re)open the store, dispatch units, assemble the manifest.

Rows follow the reader's ``refs()`` order (after ``limit``). Work units are chunk-aligned
(shard-aligned when sharding) row ranges, so workers write disjoint regions; each finished
unit leaves ``STORE/.parts/unit-NNNNNN.parquet`` (see ``maskgen.generate.worker``). A rerun skips
units that have a part, so a job killed at any moment finishes, when started again, with the
same arrays and manifest as an uninterrupted run. ``manifest.parquet`` is assembled from the
parts at the end (atomically) and the parts are removed.

A store made with other settings (dataset, frame list, K, S, chunking, post-processing, LP-SAM
checkpoint) is never resumed: ``StoreMismatchError`` names every difference.

The reader and the predictor are injected as small picklable specs (``ReaderSpec``,
``PredictorSpec`` or anything with the same methods), which is how tests run the job
mechanics with stand-ins.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from maskgen.common.files import sha256_file
from maskgen.common.provenance import RUN_INFO_NAME, write_run_info
from maskgen.datasets.framecheck import MAX_ASPECT, MIN_SIDE
from maskgen.generate.postprocess import PostprocessConfig
from maskgen.generate.postprocess_batched import POSTPROCESS_PATHS
from maskgen.generate.worker import WorkUnit
from maskgen.store.format import STATUS_FAILED
from maskgen.store.reader import read_manifest
from maskgen.store.writer import (
    assemble_manifest,
    clear_store,
    finished_parts,
    part_path,
    prepare_store,
    remove_parts,
)

log = logging.getLogger(__name__)
RUN_INFO = RUN_INFO_NAME


@dataclass(frozen=True)
class ReaderSpec:
    """Opens the registry reader for ``dataset`` at ``root`` (root None: from the environment)."""

    dataset: str
    root: str | None = None

    def open(self):
        from maskgen.datasets.registry import open_dataset

        return open_dataset(self.dataset, self.root)


@dataclass(frozen=True)
class CorpusSpec:
    """Several registry datasets read as one frame list, in the order given (e.g. Butterfly +
    CAMUS, the paper's pre-training corpus). Frame ids and the manifest's ``dataset`` column
    keep them apart; the store's ``dataset`` setting is their names joined by ``+``."""

    parts: tuple[ReaderSpec, ...]

    def __post_init__(self):
        names = [p.dataset for p in self.parts]
        if len(names) < 2:
            raise ValueError("a corpus needs at least two datasets; use ReaderSpec for one")
        if len(set(names)) != len(names):
            raise ValueError(f"--dataset given twice in {' '.join(names)}: each dataset at most once")

    @property
    def dataset(self) -> str:
        return "+".join(p.dataset for p in self.parts)

    def open(self) -> CorpusReader:
        return CorpusReader({p.dataset: p.open() for p in self.parts})


class CorpusReader:
    """``refs()`` of every reader one after the other; ``load(ref)`` by the reader of ``ref.dataset``."""

    def __init__(self, readers: dict):
        self.readers = readers

    def refs(self) -> list:
        return [ref for reader in self.readers.values() for ref in reader.refs()]

    def load(self, ref):
        return self.readers[ref.dataset].load(ref)


def reader_spec(datasets: list[str], roots: list[str]) -> ReaderSpec | CorpusSpec:
    """The reader of ``maskgen run --dataset A [--root X] [--dataset B --root Y ...]``: the i-th
    ``--root`` goes with the i-th ``--dataset``; no ``--root`` at all takes every root from the
    environment. Raises ValueError when the counts differ."""
    if not datasets:
        raise ValueError("--dataset is required (see `maskgen datasets`)")
    if roots and len(roots) != len(datasets):
        raise ValueError(f"{len(datasets)} --dataset but {len(roots)} --root: give one --root per --dataset, "
                         "in the same order, or none (roots from the environment)")
    specs = [ReaderSpec(d, r) for d, r in zip(datasets, roots or [None] * len(datasets), strict=True)]
    return specs[0] if len(specs) == 1 else CorpusSpec(tuple(specs))


@dataclass(frozen=True)
class PredictorSpec:
    """Loads LP-SAM from an adaptation folder (``maskgen adapt --out``); ``proposals`` says
    which candidates it makes (a ``maskgen.lpsam.proposals.ProposalConfig``; None: latent)."""

    adapt_dir: str
    proposals: Any = None

    def proposal_settings(self) -> dict:
        from maskgen.lpsam.proposals import ProposalConfig

        return (self.proposals or ProposalConfig()).to_dict()

    def checkpoint_sha256(self) -> str:
        from maskgen.lpsam.artifacts import WEIGHTS

        weights = Path(self.adapt_dir) / WEIGHTS
        if not weights.exists():
            raise FileNotFoundError(f"--checkpoint {self.adapt_dir}: no lpsam.safetensors there; "
                                    "create it with `maskgen adapt --out DIR`")
        return sha256_file(weights)

    def load(self, device):
        from maskgen.lpsam import load_predictor

        return load_predictor(self.adapt_dir, device, proposals=self.proposals)


@dataclass(frozen=True)
class MaskJob:
    """Everything ``maskgen run`` needs; settings that shape the store are in ``settings()``.

    Attributes:
        out: STORE folder. reader / predictor: specs (see module docstring).
        size: store resolution S (multiple of 8). chunk: frames per chunk; shard: frames per
        shard or None. batch_size: frames per predictor call. limit: first N frames only.
        device / workers_per_gpu: ``--device``, and how many workers share one GPU (1: none).
        min_side / max_aspect: frames smaller or more elongated than this fail.
        postprocess: ``frame`` (per frame on the host, the reference) or ``batched`` (tensor
        operations on the predictor's device, ``maskgen.generate.postprocess_batched``); the store's
        contents are the same either way, so it is not part of ``settings()``.
    """

    out: str
    reader: Any
    predictor: Any
    post: PostprocessConfig = field(default_factory=PostprocessConfig)
    size: int = 256
    chunk: int = 64
    shard: int | None = None
    batch_size: int = 8
    device: str = "auto"
    workers_per_gpu: int = 1
    limit: int | None = None
    min_side: int = MIN_SIDE
    max_aspect: float = MAX_ASPECT
    postprocess: str = "frame"

    def __post_init__(self):
        if self.postprocess not in POSTPROCESS_PATHS:
            raise ValueError(f"postprocess must be one of {', '.join(POSTPROCESS_PATHS)}, got {self.postprocess!r}")
        for name in ("size", "chunk", "batch_size", "min_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.size % 8:
            raise ValueError(f"size must be a multiple of 8 (bit-packed masks), got {self.size}")
        if self.shard is not None and (self.shard < self.chunk or self.shard % self.chunk):
            raise ValueError(f"shard ({self.shard}) must be a multiple of chunk ({self.chunk})")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")

    @property
    def unit_rows(self) -> int:
        return self.shard or self.chunk

    def settings(self, frame_ids: list[str], checkpoint_sha256: str) -> dict:
        """The store's identity: a store is resumed only when these are all equal."""
        return {
            "dataset": self.reader.dataset,
            "frames": len(frame_ids),
            "frames_sha256": hashlib.sha256("\n".join(frame_ids).encode()).hexdigest(),
            "limit": self.limit,
            "size": self.size, "chunk": self.chunk, "shard": self.shard,
            "min_side": self.min_side, "max_aspect": self.max_aspect,
            "lpsam_checkpoint_sha256": checkpoint_sha256,
            **{f"post_{k}": v for k, v in self.post.to_dict().items()},
            **{f"proposals_{k}": v for k, v in self._proposals().items()},
        }

    def _proposals(self) -> dict:
        """The predictor's candidate settings (stand-in predictors without them: none)."""
        settings = getattr(self.predictor, "proposal_settings", None)
        return settings() if callable(settings) else {}


@dataclass
class JobSummary:
    frames: int
    ok: int
    failed: int
    masks: int
    units_run: int
    units_skipped: int
    seconds: float
    failures: list[tuple[str, str]]
    masks_per_frame: dict[int, int]
    reader_problems: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        per_ok = self.masks / self.ok if self.ok else 0.0
        out = [f"frames: {self.frames} ({self.ok} ok, {self.failed} failed)",
               f"masks: {self.masks} ({per_ok:.2f} per ok frame); histogram "
               + ", ".join(f"{k}:{v}" for k, v in sorted(self.masks_per_frame.items())),
               f"units: {self.units_run} run, {self.units_skipped} already done; {self.seconds:.1f} s"]
        out += [f"failed {fid}: {reason}" for fid, reason in self.failures[:10]]
        if len(self.failures) > 10:
            out.append(f"... and {len(self.failures) - 10} more failed frames (see the manifest)")
        return out


def plan_units(refs, unit_rows: int) -> list[WorkUnit]:
    """Split refs (row order) into consecutive units of ``unit_rows`` rows (the last may be short)."""
    return [WorkUnit(i, start, min(start + unit_rows, len(refs)), tuple(refs[start:start + unit_rows]))
            for i, start in enumerate(range(0, len(refs), unit_rows))]


def summarise(table: pa.Table, units_run: int, units_skipped: int, seconds: float,
              reader_problems: list | None = None) -> JobSummary:
    rows = table.to_pylist()
    failures = [(r["frame_id"], r["reason"]) for r in rows if r["status"] == STATUS_FAILED]
    counts = Counter(r["mask_count"] for r in rows if r["status"] != STATUS_FAILED)
    return JobSummary(len(rows), len(rows) - len(failures), len(failures),
                      sum(r["mask_count"] for r in rows), units_run, units_skipped, seconds,
                      failures, dict(counts), list(reader_problems or []))


def run_mask_job(job: MaskJob, workers: int = 1, scheduler: str | None = None,
                 overwrite: bool = False, progress: bool = True, threads: int | None = None,
                 on_start=None) -> JobSummary:
    """Run (or resume, or confirm) the mask store job; returns its summary.

    ``on_start()`` runs once the inputs are checked and the store folder exists (or was resumed).

    ``workers`` > 1 or a ``scheduler`` address dispatch units through dask.distributed;
    otherwise units run in this process. ``threads``: torch CPU threads per worker (see
    ``maskgen.generate.dispatch.run_units``).
    """
    from maskgen.common.devices import check_slots
    from maskgen.generate.dispatch import run_units

    t0 = time.perf_counter()
    if scheduler is None:  # a joined cluster's workers see devices this process cannot
        check_slots(job.device, workers, "--workers", job.workers_per_gpu)  # before anything is written
    out = Path(job.out)
    reader = job.reader.open()
    refs = list(reader.refs())[: job.limit]
    if not refs:
        raise ValueError(f"dataset {job.reader.dataset!r} lists no frames; nothing to do")
    sha = job.predictor.checkpoint_sha256()
    settings = job.settings([r.frame_id for r in refs], sha)
    state = prepare_store(out, settings, job.post.k, job.size, job.chunk, job.shard, overwrite)
    if on_start is not None:
        on_start()
    units = plan_units(refs, job.unit_rows)
    problems = [(str(p), str(r)) for p, r in getattr(reader, "problems", [])]
    run_json = (job, workers, scheduler, threads, sha, settings, problems)
    if state == "complete":
        log.info("%s is already complete; nothing to do", out)
        remove_parts(out)  # killed between writing the manifest and tidying up
        summary = summarise(read_manifest(out), 0, len(units), time.perf_counter() - t0, problems)
        if not (out / RUN_INFO).exists():  # killed between the manifest and run.json
            _write_run_json(out, summary, *run_json)
        return summary
    pending = [u for u in units if not part_path(out, u.index).exists()]
    log.info("%s: %d frames, %d units (%d already done)", out, len(refs), len(units),
             len(units) - len(pending))
    try:
        run_units(pending, job, sha, workers=workers, scheduler=scheduler, progress=progress,
                  local_reader=reader, threads=threads)
    except BaseException:
        if state == "created" and not finished_parts(out):
            # nothing was finished (e.g. the model did not load): leave no empty store behind
            # that would refuse the corrected rerun
            clear_store(out)
        raise
    table = assemble_manifest(out, len(refs))
    summary = summarise(table, len(pending), len(units) - len(pending), time.perf_counter() - t0, problems)
    _write_run_json(out, summary, *run_json)
    return summary


def _write_run_json(out: Path, summary: JobSummary, job: MaskJob, workers, scheduler, threads, sha: str,
                    settings: dict, problems: list) -> None:
    config = {**asdict(job), "reader": repr(job.reader), "predictor": repr(job.predictor),
              "workers": workers, "scheduler": scheduler, "threads": threads}
    write_run_info(out, config, seed=None, lpsam_checkpoint_sha256=sha, settings=settings,
                   summary={k: v for k, v in asdict(summary).items() if k not in ("failures", "reader_problems")},
                   reader_problems=problems)
