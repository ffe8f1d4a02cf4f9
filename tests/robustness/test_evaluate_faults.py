"""evaluate under faults: a NaN cell fails alone, bad frames are recorded, workers die with the sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from faults import evaluate_fakes, huge_png

from evaluate.backbones import random_backbone
from evaluate.sweep import SweepPlan, run_sweep
from evaluate.tasks import TASKS, load_task, resolve_tasks
from maskgen.datasets.frames import CorruptFrameError, Frame
from maskgen.datasets.readers.imageio import read_gray

pytestmark = pytest.mark.usefixtures("one_thread")
fakes = evaluate_fakes()


def test_a_nan_fine_tuning_loss_fails_its_cells_and_the_sweep_goes_on(tmp_path, monkeypatch):
    """Issue: NaN losses were recorded as ok cells (accuracy 0.55). Classification's loss is
    made NaN; its cells fail with the reason, the segmentation task is unaffected."""
    import evaluate.train as train

    real = train.ClassificationHead.loss
    monkeypatch.setattr(train.ClassificationHead, "loss",
                        lambda self, *a: real(self, *a) * float("nan"))
    profile = fakes.Profile(name="tiny", resolution=32, max_frames=0, cls_epochs=2, seg_epochs=1,
                                       batch_size=8, seg_head="fpn", seg_lr=0.05, cls_lr=0.001,
                                       overlay_frames=0, protocols=("finetune",))

    def opener(dataset, root):
        return fakes.FakeReader(dataset, 24, "classification" if dataset == "pocus" else "segmentation")

    tasks = resolve_tasks("pocus-cls,udiat-seg")
    plan = SweepPlan(tasks=tuple(t.name for t in tasks), methods=("random",), seeds=(0,), folds=2,
                     profile=profile)
    out = tmp_path / "eval"
    report = run_sweep(out, tasks, [random_backbone()], plan, {}, torch.device("cpu"), opener=opener,
                       progress=False)
    for fold in range(2):
        cell = json.loads((out / "cells" / "pocus-cls" / "random" / f"seed0-fold{fold}.json").read_text())
        assert cell["status"] == "failed"
        assert cell["error"].startswith("NonFiniteLossError: fine-tuning loss is nan at epoch 1, step 1")
        seg = json.loads((out / "cells" / "udiat-seg" / "random" / f"seed0-fold{fold}.json").read_text())
        assert seg["status"] == "ok"
    assert "failed: 2" in report.read_text()


class OddFrames(fakes.FakeReader):
    """The fake reader with one oversized PNG on disk, a 1 x 1 frame, a blank one, an RGB one."""

    def __init__(self, png):
        super().__init__("pocus", 30, "classification")
        self.png = png

    def load(self, ref):
        i = int(ref.source[4:7])
        if i == 4:
            return Frame(ref, read_gray(self.png))  # raises CorruptFrameError: oversized
        if i == 5:
            return Frame(ref, np.full((1, 1), 7, np.uint8))
        if i == 6:
            return Frame(ref, np.zeros((40, 48), np.uint8))
        if i == 7:
            raise MemoryError("decoder ran out of memory")  # any other failure: recorded too
        return super().load(ref)


def test_oversized_tiny_and_blank_frames_are_recorded_and_the_task_goes_on(tmp_path):
    """Issue: one 20000 x 20000 PNG dropped the whole task (exit 1, file not named); 1 x 1 and
    blank frames were accepted although `maskgen run` rejects them."""
    png = huge_png(tmp_path / "huge.png")
    with pytest.raises(CorruptFrameError, match="oversized") as err:
        read_gray(png)
    assert err.value.path == str(png)
    data = load_task(TASKS["pocus-cls"], OddFrames(png), 32, progress=False)
    assert len(data) == 26
    reasons = dict(data.problems)
    assert "oversized" in reasons["pocus/img/004.png#0"] and "400000000 pixels" in reasons["pocus/img/004.png#0"]
    assert "too small (1x1)" in reasons["pocus/img/005.png#0"]
    assert "blank frame" in reasons["pocus/img/006.png#0"]
    assert "MemoryError" in reasons["pocus/img/007.png#0"]


WORKERS = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from evaluate.parallel import die_with_parent

def pid(_):
    time.sleep(0.3)
    return os.getpid()

if __name__ == "__main__":
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent)
    print(" ".join(str(p) for p in sorted(set(pool.map(pid, range(8))))), flush=True)
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_die_with_a_killed_sweep(tmp_path):
    """Issue: killing `evaluate sweep --workers 2` left two ~930 MB workers running."""
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert pids and all(_alive(p) for p in pids)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
