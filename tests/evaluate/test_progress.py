"""Progress in the terminal: epochs inside a cell (in-process and from worker processes) and the
--ablations pre-trainings (fed from their RUN_DIRs while their output goes to log files)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import torch

from evaluate.ablations import PretrainProgress, ensure_ablations, run_progress
from evaluate.backbones import random_backbone
from evaluate.cells import CellKey, cell_protocol, fold_digest, run_cell
from evaluate.parallel import CellPool
from evaluate.sweep import make_folds
from evaluate.tasks import TASKS, load_task


def _pocus(fake_opener, profile):
    return load_task(TASKS["pocus-cls"], fake_opener("pocus", None), profile.resolution, progress=False)


def test_a_cell_reports_every_epoch(fake_opener, tiny_profile):
    torch.set_num_threads(1)
    data = _pocus(fake_opener, tiny_profile)
    folds = make_folds(data, 3)
    seen = []
    run_cell(CellKey("pocus-cls", 0, "random", 0), data, folds, random_backbone(), tiny_profile,
             torch.device("cpu"), {}, on_epoch=lambda epoch, epochs: seen.append((epoch, epochs)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_worker_processes_report_epochs_to_the_parent(fake_opener, tiny_profile):
    data = _pocus(fake_opener, tiny_profile)
    folds = make_folds(data, 2)
    backbone = random_backbone()
    protocol = cell_protocol(tiny_profile, backbone, fold_digest(folds, data.frame_ids))
    jobs = [(CellKey("pocus-cls", f, "random", 0), backbone, protocol) for f in range(2)]
    seen = []
    with CellPool(data, folds, [backbone], tiny_profile, torch.device("cpu"), 2, 1,
                  on_epoch=lambda key, epoch, epochs: seen.append((key.fold, epoch, epochs))) as pool:
        for _, _, future in pool.run(jobs):
            future.result()
    assert sorted(seen) == [(f, e, 3) for f in range(2) for e in (1, 2, 3)]


def _write_run(run_dir: Path, steps: int, done: int, max_steps=None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"config": {"max_steps": max_steps}, "inputs": {"steps": steps}}))
    lines = "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, done + 1))
    (run_dir / "metrics.jsonl").write_text(lines + '{"step": 9')  # a line still being written


def test_run_progress_reads_run_json_and_metrics(tmp_path):
    assert run_progress(tmp_path / "not-started") == (0, None)
    _write_run(tmp_path / "a", steps=40, done=7)
    assert run_progress(tmp_path / "a") == (7, 40)
    _write_run(tmp_path / "b", steps=40, done=2, max_steps=5)
    assert run_progress(tmp_path / "b") == (2, 5)


def test_ablation_pretraining_shows_a_bar_per_run(tmp_path, capsys):
    class Writes:
        """A fake `pretrain` that leaves run.json + metrics like the real one, slowly."""

        def __call__(self, command, stdout=None, stderr=None):
            if command[1] == "run":
                run_dir = Path(command[command.index("--out") + 1])
                for done in range(1, 4):
                    _write_run(run_dir, steps=3, done=done)
                    time.sleep(0.1)
            else:
                Path(command[command.index("--out") + 1]).write_bytes(b"x")
            return subprocess.CompletedProcess(command, 0)

    ensure_ablations(tmp_path / "store", tmp_path, runner=Writes(), skip=("anaus",), workers=2)
    err = capsys.readouterr().err
    for name in ("anaus-grid", "anaus-noctx"):
        assert f"pretrain {name}" in err and "3/3" in err, err


def test_progress_can_be_switched_off(tmp_path, capsys):
    with PretrainProgress({"x": tmp_path / "x"}, enabled=False):
        pass
    assert capsys.readouterr().err == ""
