"""Cells in parallel: ``evaluate sweep --workers N`` runs N cells at a time in spawned processes.

Each worker receives the task's frames, folds, backbones and profile once (when it starts),
sets its own torch thread count and takes one device by ``maskgen.common.devices``' policy: on CPU
every worker uses the CPU, with accelerators worker i takes GPU i (from --device's index on)
and more workers than GPUs is refused before the sweep starts. Workers only
compute; the parent writes every finished cell, so the cells on disk, resumability and the
report are those of a sequential sweep. A cell is seeded by its key alone, so its result does
not depend on which worker ran it (a test compares 2 workers with 1).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed

import numpy as np
import torch

from evaluate.backbones import Backbone
from evaluate.cells import CellKey, run_cell
from evaluate.profiles import Profile
from evaluate.tasks import TaskData
from maskgen.common.devices import claim_device, slot_devices

_WORKER: dict = {}  # this worker process's task, set once by _start_worker


def die_with_parent(poll_s: float = 1.0) -> threading.Thread:
    """Exit this process as soon as its parent is gone (killed, even with SIGKILL).

    A worker blocked on its task queue would otherwise live on, holding its copy of the task's
    frames (about 1 GB each), when ``evaluate sweep`` is killed. A daemon thread polls the
    parent pid: when the parent dies the worker is re-parented and the pid changes.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="die-with-parent", daemon=True)
    thread.start()
    return thread


def _start_worker(data, folds, backbones, profile, threads, devices, epochs) -> None:
    die_with_parent()
    torch.set_num_threads(threads)
    _WORKER.update(data=data, folds=folds, backbones=backbones, profile=profile,
                   device=claim_device(torch.device(devices.get())), epochs=epochs)


def _run(key: CellKey, backbone_index: int, protocol: dict) -> tuple[dict, dict | None]:
    w = _WORKER
    return run_cell(key, w["data"], w["folds"], w["backbones"][backbone_index], w["profile"], w["device"],
                    protocol, on_epoch=lambda epoch, epochs: w["epochs"].put((key, epoch, epochs)))


class CellPool:
    """A pool of ``workers`` processes for one task's cells (a context manager).

    ``on_epoch(key, epoch, epochs)`` runs in this process (a thread) after each fine-tuning
    epoch of any worker's cell: progress inside long cells.
    """

    def __init__(self, data: TaskData, folds: np.ndarray, backbones: list[Backbone], profile: Profile,
                 device: torch.device, workers: int, threads: int,
                 on_epoch: Callable[[CellKey, int, int], None] | None = None):
        context = multiprocessing.get_context("spawn")  # no forked torch state or threads
        devices = context.Queue()
        for name in slot_devices(str(device), workers, "--workers"):
            devices.put(name)
        self.backbones, self.on_epoch, self.epochs = backbones, on_epoch, context.Queue()
        self.stop = threading.Event()
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                            initargs=(data, folds, backbones, profile, threads, devices,
                                                      self.epochs))

    def _listen(self) -> None:
        while not self.stop.is_set():
            try:
                key, epoch, epochs = self.epochs.get(timeout=0.5)
            except queue.Empty:
                continue
            if self.on_epoch is not None:
                self.on_epoch(key, epoch, epochs)

    def __enter__(self) -> CellPool:
        self.listener.start()
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.stop.set()
        self.listener.join()

    def run(self, jobs: list[tuple[CellKey, Backbone, dict]]
            ) -> Iterator[tuple[CellKey, dict, Future]]:
        """Yield (key, protocol, finished future) in order of completion."""
        index = {id(b): i for i, b in enumerate(self.backbones)}
        futures = {self.executor.submit(_run, key, index[id(backbone)], protocol): (key, protocol)
                   for key, backbone, protocol in jobs}
        for future in as_completed(futures):
            key, protocol = futures[future]
            yield key, protocol, future
