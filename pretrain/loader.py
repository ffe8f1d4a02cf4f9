"""Streams frames and packed anatomy masks from the store, chunk-aligned.

Each epoch the store's chunks (those holding usable rows: status ok, >= 1 mask) are shuffled
with (seed, epoch), dealt round-robin to (rank, worker) partitions (disjoint, and complete up
to the batches dropped at partition ends), and each partition streams its chunks through a
shuffle buffer. The row order is a pure function of (seed, epoch, partition), computed from
row indices only, so a resumed run skips to its data position without reading pixels.

Batches are dicts of CPU (or, with ``cache='device'``, device) uint8 tensors: images (B, S, S),
masks (B, K, S, S/8) bit-packed, counts (B,). Masks are unpacked on the device by the loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from maskgen.store import MaskStore

log = logging.getLogger(__name__)
CACHES = ("auto", "device", "ram", "none")


@dataclass(frozen=True)
class LoaderConfig:
    batch_size: int = 16
    seed: int = 0
    shuffle_buffer: int = 1024
    cache: str = "auto"
    workers: int = 0

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.cache not in CACHES:
            raise ValueError(f"--cache {self.cache!r}: choose one of {', '.join(CACHES)}")
        if self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")


def epoch_chunks(chunk_ids: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The chunk order of an epoch: a permutation of chunk_ids drawn from (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 1]).permutation(chunk_ids)


def partition(chunks: np.ndarray, rank: int, world: int, worker: int, workers: int) -> np.ndarray:
    """The chunks of one (rank, worker): every (world * workers)-th chunk, disjoint and complete."""
    workers = max(workers, 1)
    return chunks[rank * workers + worker:: world * workers]


def buffer_shuffle(rows_per_chunk: list[np.ndarray], buffer: int, rng: np.random.Generator) -> np.ndarray:
    """Rows in the order a shuffle buffer of ``buffer`` rows emits them when fed chunk by chunk."""
    out, buf = [], []
    for rows in rows_per_chunk:
        for row in rows:
            if len(buf) < buffer:
                buf.append(int(row))
                continue
            i = int(rng.integers(buffer))
            out.append(buf[i])
            buf[i] = int(row)
    out.extend(buf[i] for i in rng.permutation(len(buf)))
    return np.asarray(out, dtype=np.int64)


def round_robin_skip(counts: list[int], k: int) -> list[int]:
    """How many batches each worker has produced after the first k batches of a DataLoader that
    round-robins workers with ``counts`` batches each (exhausted workers are passed over)."""
    done = [0] * len(counts)
    while k > 0:
        progressed = False
        for w, c in enumerate(counts):
            if k > 0 and done[w] < c:
                done[w] += 1
                k -= 1
                progressed = True
        if not progressed:
            raise ValueError("skip position past the end of the epoch")
    return done


class FrameStream(IterableDataset):
    """Batches of usable rows of one rank's partition for ``set_position(epoch, batch)``."""

    def __init__(self, store: MaskStore, cfg: LoaderConfig, rank: int = 0, world: int = 1,
                 device: torch.device | None = None):
        self.store, self.cfg, self.rank, self.world = store, cfg, rank, world
        self.rows = store.usable_rows()
        if len(self.rows) == 0:
            raise ValueError(f"store {store.path} has no usable frame (status ok with >= 1 mask)")
        self.chunk = store.chunk
        cid = self.rows // self.chunk
        self.chunk_ids = np.unique(cid)
        self.chunk_rows = {int(c): self.rows[cid == c] for c in self.chunk_ids}
        self.cache = resolve_cache(cfg.cache, store, len(self.rows), device)
        self.workers = 0 if self.cache == "device" else cfg.workers
        self.device = device
        self.epoch, self.start_batch = 0, 0
        self._arrays = self._load_all() if self.cache in ("ram", "device") else None

    # --- the order: pure functions of (seed, epoch, partition) -----------------------------
    def partition_rows(self, epoch: int, rank: int, worker: int) -> np.ndarray:
        chunks = partition(epoch_chunks(self.chunk_ids, self.cfg.seed, epoch), rank, self.world,
                           worker, self.workers)
        rng = np.random.default_rng([self.cfg.seed, epoch, 2, rank, worker])
        return buffer_shuffle([self.chunk_rows[int(c)] for c in chunks], self.cfg.shuffle_buffer, rng)

    def worker_batches(self, epoch: int, rank: int) -> list[int]:
        b = self.cfg.batch_size
        return [len(self.partition_rows(epoch, rank, w)) // b for w in range(max(self.workers, 1))]

    def batches_in_epoch(self, epoch: int) -> int:
        """Steps of an epoch: the fewest batches any rank has (ranks stay in lock-step)."""
        return min(sum(self.worker_batches(epoch, r)) for r in range(self.world))

    def set_position(self, epoch: int, batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, batch

    # --- reading ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        counts = self.worker_batches(self.epoch, self.rank)
        skip = round_robin_skip(counts, self.start_batch)[worker]
        order = self.partition_rows(self.epoch, self.rank, worker)
        b = self.cfg.batch_size
        batches = [order[i * b:(i + 1) * b] for i in range(skip, counts[worker])]
        if self._arrays is not None:
            for rows in batches:
                idx = torch.as_tensor(np.searchsorted(self.rows, rows), device=self._arrays["images"].device)
                yield {k: v[idx] for k, v in self._arrays.items()}
        else:
            yield from self._stream(batches)

    def _stream(self, batches: list[np.ndarray]):
        """cache none: decode each chunk when first needed, drop it when its rows are used."""
        wanted = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        left = dict(zip(*(x.tolist() for x in np.unique(wanted // self.chunk, return_counts=True)),
                        strict=True))
        cache: dict = {}
        for rows in batches:
            yield self._gather(rows, left, cache)

    def _gather(self, rows: np.ndarray, left: dict, cache: dict) -> dict[str, torch.Tensor]:
        out = {k: [] for k in ("images", "masks", "counts")}
        for row in rows:
            c = int(row) // self.chunk
            if c not in cache:
                start = c * self.chunk
                cache[c] = self.store.read(start, min(start + self.chunk, len(self.store)))
            data = cache[c]
            for k in out:
                out[k].append(data[k][int(row) - c * self.chunk])
            left[c] -= 1
            if left[c] == 0:
                del cache[c]
        return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}

    def _load_all(self) -> dict[str, torch.Tensor]:
        parts = {k: [] for k in ("images", "masks", "counts")}
        for c in self.chunk_ids:
            start = int(c) * self.chunk
            data = self.store.read(start, min(start + self.chunk, len(self.store)))
            keep = self.chunk_rows[int(c)] - start
            for k in parts:
                parts[k].append(data[k][keep])
        arrays = {k: torch.from_numpy(np.concatenate(v)) for k, v in parts.items()}
        if self.cache == "device":
            arrays = {k: v.to(self.device) for k, v in arrays.items()}
        log.info("cached %d usable frames in %s", len(self.rows), self.cache)
        return arrays


def resolve_cache(cache: str, store: MaskStore, n: int, device) -> str:
    """``auto`` -> ram when the usable rows take under a quarter of the free host memory."""
    if cache != "auto":
        if cache == "device" and device is None:
            raise ValueError("--cache device needs a device")
        return cache
    need = n * (store.size * store.size + store.k * store.size * store.size // 8 + 1)
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        free = 0
    return "ram" if need < free / 4 else "none"
