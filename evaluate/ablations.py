"""Baselines and ablations trained through the ``pretrain`` CLI (as subprocesses).

``evaluate sweep --ablations --store STORE`` makes sure OUT/backbones/<name>.safetensors exists
for the full method and its controls, running ``pretrain run`` + ``pretrain export`` for the
missing ones only. Running the CLI (not importing it) keeps SAM out of this process and
exercises the user-facing contract.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from maskgen.common.provenance import RUN_INFO_NAME
from pretrain.checkpoint import CHECKPOINT_NAME

log = logging.getLogger(__name__)

# method name -> extra ``pretrain run`` options (the full method first)
ABLATIONS: dict[str, tuple[str, ...]] = {
    "anaus": (),                                  # the full method: LP-SAM anatomy masks
    "anaus-whole": ("--mask-source", "whole"),    # one mask = the whole frame (image-level, BYOL-style)
    "anaus-grid": ("--mask-source", "grid"),      # anatomy-free grid masks (DetCon-style control)
    "anaus-noctx": ("--lambda-ctx", "0"),         # without the contextual prediction objective
}
FULL_METHOD = "anaus"
# with --oracle-store: the full method pre-trained on ground-truth anatomy masks (``maskgen oracle``)
ORACLE = "anaus-oracle"
# `pretrain run` options the sweep sets itself for every pre-training (not for --pretrain-args)
SWEEP_SETS = ("--store", "--out", "--seed", "--device", "--threads", "--resume", "--config",
              *sorted({o for extra in ABLATIONS.values() for o in extra if o.startswith("--")}))


def run_dir(out_dir: str | Path, name: str) -> Path:
    """RUN_DIR of the pre-training that ``--ablations`` trained for method ``name``."""
    return Path(out_dir) / "backbones" / f"{name}-run"


class PretrainError(RuntimeError):
    """A ``pretrain`` subprocess failed; the message holds the command and its log's tail."""


def pretrain_executable() -> list[str]:
    """The ``pretrain`` console script of this environment (beside the running Python)."""
    beside = Path(sys.executable).parent / "pretrain"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("pretrain")
    if found is None:
        raise PretrainError("the `pretrain` command is not installed (pip install -e . in the venv)")
    return [found]


def _run(command: list[str], log_path: Path, runner: Callable) -> None:
    log.info("running %s", " ".join(command))
    with open(log_path, "a") as handle:
        # a newline first: a killed run may have left a progress bar without one
        handle.write(("\n" if handle.tell() else "") + "$ " + " ".join(command) + "\n")
        handle.flush()
        code = runner(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        lines = [ln.strip() for ln in log_path.read_text().splitlines() if ln.strip()]
        last = lines[-1][-300:] if lines else "no output"
        raise PretrainError(f"`pretrain {command[1] if len(command) > 1 else ''}` exited with {code}: {last} "
                            f"(full log: {log_path})")


def run_progress(run: Path) -> tuple[int, int | None]:
    """(last logged step, total steps or None) of a `pretrain run` from its run.json and
    metrics.jsonl (a line being written is skipped)."""
    total = None
    try:
        info = json.loads((run / RUN_INFO_NAME).read_text())
        total = info["inputs"]["steps"]
        if info["config"].get("max_steps"):
            total = min(total, info["config"]["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    step = 0
    try:
        with open(run / "metrics.jsonl", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            for line in f.read().splitlines()[::-1]:
                try:
                    step = int(json.loads(line)["step"])
                    break
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        pass
    return step, total


class PretrainProgress:
    """One terminal progress bar per pre-training, fed from its RUN_DIR (polled every
    ``interval`` s): the subprocesses' own output goes to their log files."""

    def __init__(self, run_dirs: dict[str, Path], enabled: bool = True, interval: float = 2.0):
        self.run_dirs, self.interval, self.enabled = run_dirs, interval, enabled and bool(run_dirs)
        self.bars = {name: tqdm(total=None, desc=f"pretrain {name}", unit="step", position=i, leave=True,
                                disable=not self.enabled)
                     for i, name in enumerate(run_dirs)}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _update(self) -> None:
        for name, run in self.run_dirs.items():
            step, total = run_progress(run)
            bar = self.bars[name]
            if total is not None and bar.total != total:
                bar.total = total
            if step != bar.n:
                bar.n = step
                bar.refresh()

    def _poll(self) -> None:
        while not self.stop.wait(self.interval):
            self._update()

    def __enter__(self) -> PretrainProgress:
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join()
            self._update()
        for bar in self.bars.values():
            bar.close()


def ensure_ablations(store: str | Path, out_dir: str | Path, pretrain_args: tuple[str, ...] = (),
                     seed: int = 0, device: str = "auto", skip: tuple[str, ...] = (),
                     runner: Callable = subprocess.run, workers: int = 1, devices: list[str] | None = None,
                     threads: int | None = None, progress: bool = True,
                     oracle_store: str | Path | None = None) -> dict[str, Path]:
    """Train and export what is missing; returns {method name: exported .safetensors}.

    Args:
        store: the mask store (STORE/masks.zarr + manifest) pre-training reads.
        oracle_store: a store of the same frames with ground-truth masks (``maskgen oracle``):
            also trains ``ORACLE``, the full method on it, with the same budget and seed.
        out_dir: the sweep's OUT_DIR; backbones go to OUT_DIR/backbones/.
        pretrain_args: extra options for every ``pretrain run`` (the profile's budget).
        skip: method names the user already supplied with ``--checkpoint``.
        runner: ``subprocess.run``-compatible callable (tests inject a fake).
        workers: pre-trainings run at a time; the i-th missing one gets ``devices[i % len]``
            (default: ``device`` for all) and ``threads`` torch threads when given.
        progress: a terminal progress bar per pre-training (their output goes to log files).
    """
    folder = Path(out_dir) / "backbones"
    folder.mkdir(parents=True, exist_ok=True)
    exe = pretrain_executable() if runner is subprocess.run else ["pretrain"]
    exported, missing = {}, []
    stores = {name: store for name in ABLATIONS}
    if oracle_store is not None:
        stores[ORACLE] = oracle_store
    for name in stores:
        if name in skip:
            continue
        target = folder / f"{name}.safetensors"
        if target.is_file():
            log.info("%s already exported at %s: not retrained", name, target)
            exported[name] = target
        else:
            missing.append(name)
    devices = devices or [device]

    def train(i: int, name: str) -> Path:
        run, target = run_dir(out_dir, name), folder / f"{name}.safetensors"
        command = [*exe, "run", "--store", str(stores[name]), "--out", str(run), "--seed", str(seed),
                   "--device", devices[i % len(devices)], *pretrain_args, *ABLATIONS.get(name, ())]
        if threads is not None:
            command += ["--threads", str(threads)]
        if (run / CHECKPOINT_NAME).is_file():  # an interrupted run continues exactly
            command.append("--resume")
        log_path = folder / f"{name}.log"
        _run(command, log_path, runner)
        _run([*exe, "export", str(run), "--out", str(target)], log_path, runner)
        if not target.is_file():
            raise PretrainError(f"`pretrain export` reported success but wrote no {target}")
        return target

    for name in missing:
        log.info("pre-training %s (log: %s)", name, folder / f"{name}.log")
    # threads suffice: each job waits on its own subprocess
    with (PretrainProgress({n: run_dir(out_dir, n) for n in missing}, progress),
          ThreadPoolExecutor(max(1, min(workers, len(missing)))) as pool):
        futures = {name: pool.submit(train, i, name) for i, name in enumerate(missing)}
    errors = []
    for name, future in futures.items():
        try:
            exported[name] = future.result()
        except PretrainError as err:
            errors.append(err)
    if errors:
        raise errors[0]
    return {name: exported[name] for name in stores if name in exported}
