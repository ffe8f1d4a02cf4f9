"""Dispatching ``maskgen run``'s work units: in this process, or on dask.distributed workers.

One worker per GPU: ``--workers N`` starts a LocalCluster of N processes with one thread
each; ``--scheduler ADDRESS`` joins an existing cluster instead (e.g. one started by
dask-jobqueue on SLURM). Workers load the predictor once (see ``maskgen.generate.worker``) and
write disjoint chunk-aligned regions, so no locking is needed.
"""

from __future__ import annotations

import logging
import os

from tqdm.auto import tqdm

from maskgen.generate.worker import _CACHE, UnitResult, WorkUnit, process_unit

log = logging.getLogger(__name__)


def _set_torch_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return n


def run_units(units: list[WorkUnit], job, checkpoint_sha256: str, workers: int = 1,
              scheduler: str | None = None, progress: bool = True,
              local_reader=None, threads: int | None = None) -> list[UnitResult]:
    """Process ``units``; returns their results (in completion order).

    Args:
        workers: dask worker processes to start (ignored with ``scheduler``); 1 without a
            scheduler runs in this process, reusing ``local_reader`` when given.
        threads: torch CPU threads per worker (default: this process's setting in-process,
            cores // workers on a local cluster, untouched on a joined cluster). CPU results
            are bitwise reproducible across worker counts only with equal ``threads``.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if not units:
        return []
    bar = tqdm(total=sum(u.stop - u.start for u in units), unit="frame", desc="maskgen",
               disable=not progress)
    try:
        if scheduler is None and workers == 1:
            return _run_local(units, job, checkpoint_sha256, bar, local_reader, threads)
        return _run_dask(units, job, checkpoint_sha256, workers, scheduler, bar, threads)
    finally:
        bar.close()


def _run_local(units, job, sha, bar, local_reader, threads) -> list[UnitResult]:
    import torch

    if local_reader is not None:
        _CACHE[("reader", job.reader)] = local_reader
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        results = []
        for unit in units:
            results.append(process_unit(unit, job, sha))
            bar.update(unit.stop - unit.start)
        return results
    finally:
        torch.set_num_threads(before)


def _run_dask(units, job, sha, workers, scheduler, bar, threads) -> list[UnitResult]:
    from distributed import Client, LocalCluster, as_completed

    if not log.isEnabledFor(logging.INFO):  # dask is chatty; `maskgen -v` shows its logs
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.WARNING)
        client = Client(cluster)
        # CPU workers share the cores; GPU workers barely use them
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
    else:
        client = Client(scheduler)
    if threads:
        client.run(_set_torch_threads, threads)
    log.info("dask: %d workers at %s", len(client.scheduler_info()["workers"]),
             client.scheduler.address)
    try:
        futures = [client.submit(process_unit, u, job, sha, key=f"maskgen-unit-{u.index}-{os.getpid()}",
                                 pure=False) for u in units]
        results = []
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            bar.update(res.frames)
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
