"""A tiny end-to-end sweep on fake readers: report, results, resumability, CLI last line."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import timm
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import evaluate.cells as cells
import evaluate.sweep as sweep_module
from evaluate.backbones import Backbone, load_backbone, random_backbone
from evaluate.cli import main
from evaluate.sweep import SweepPlan, run_sweep
from evaluate.tasks import resolve_tasks


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(3)
    state = {k: v for k, v in timm.create_model("resnet18").state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "anaus.safetensors"
    save_file(state, str(path))
    (tmp_path / "anaus.json").write_text(json.dumps({"store_sha256": "feedbeef", "epochs": 1}))
    return path


def test_sweep_end_to_end_and_resume(tmp_path, fake_opener, tiny_profile, checkpoint, monkeypatch):
    torch.set_num_threads(1)
    out = tmp_path / "eval"
    tasks = resolve_tasks("pocus-cls,udiat-seg")
    backbones = [random_backbone(), load_backbone("anaus", checkpoint)]
    plan = SweepPlan(tasks=tuple(t.name for t in tasks), methods=("random", "anaus"), seeds=(0,),
                     folds=3, profile=tiny_profile)
    report = run_sweep(out, tasks, backbones, plan, {}, torch.device("cpu"), opener=fake_opener,
                       progress=False)
    text = report.read_text()
    assert report == out / "report.md"
    for needle in ("pocus-cls", "udiat-seg", "macro_f1", "dice", "Paired tests", "feedbeef",
                   "overlays/udiat-seg.png", "figures/pocus-cls.png", "**none** (one frame per group)",
                   "## Fine-tuning", "## Linear probe", "## Frozen-backbone segmentation", "## Label efficiency",
                   "figures/summary.png", "figures/pocus-cls-linear.png", "figures/udiat-seg-frozen.png",
                   "zero_init_last", "| random | step-0 init | step-0 FPN", "| anaus | `anaus.safetensors` | new",
                   "| low-label | udiat-seg | dice | anaus | random | 3 |", "best, median and worst",
                   "| protocol, task | random | anaus | anaus − random |", "| frozen, udiat-seg | "):
        assert needle in text, needle
    # per task: 3 protocols (cls: finetune, linear, low-label; seg: finetune, frozen, low-label)
    assert "Cells finished: 36 of 36; failed: 0" in text
    assert "Datasets without a group key (folds group by source file only): udiat." in text
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 3 * (3 * 2 * 2 + 3 * 2 * 3)  # protocols x folds x methods x metrics, per task
    assert {r["metric"] for r in table} == {"accuracy", "macro_f1", "ppv", "sensitivity", "dice"}
    assert {(r["task"], r["protocol"]) for r in table} == {
        ("pocus-cls", "finetune"), ("pocus-cls", "linear"), ("pocus-cls", "low-label"),
        ("udiat-seg", "finetune"), ("udiat-seg", "frozen"), ("udiat-seg", "low-label")}
    low = [r for r in table if r["protocol"] == "low-label" and r["metric"] == "dice"]
    full = {(r["fold"], r["method"]): r for r in table if r["protocol"] == "finetune" and r["metric"] == "dice"}
    for r in low:  # fewer training frames, the same validation and test frames
        same = full[(r["fold"], r["method"])]
        assert r["n_train"] < same["n_train"] and (r["n_val"], r["n_test"]) == (same["n_val"], same["n_test"])
    overlay = cells.read_overlay(cells.CellKey("udiat-seg", 0, "anaus", 0), out)
    assert list(overlay["rank"]) == ["best", "median", "worst"]
    assert overlay["dice"][0] >= overlay["dice"][1] >= overlay["dice"][2]
    record = json.loads(cells.CellKey("udiat-seg", 1, "random", 0, "frozen").path(out).read_text())
    assert record["fpn"] == "step-0" and record["protocol"]["protocol"] == "frozen"
    assert (out / "results.csv").read_text().count("\n") == len(table) + 1
    assert (out / "folds" / "pocus-cls.parquet").is_file() and (out / "tests.csv").is_file()
    for name in ("figures/udiat-seg.png", "overlays/udiat-seg.png", "overlays/pocus-cls.png"):
        assert (out / name).stat().st_size > 1000
    task_info = json.loads((out / "tasks" / "pocus-cls.json").read_text())
    assert task_info["grouped"] and task_info["n_problems"] == 1  # the reader's listing problem

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(sweep_module, "run_cell", must_not_run)
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*.json")}
    run_sweep(out, tasks, backbones, plan, {}, torch.device("cpu"), opener=fake_opener, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("*.json")}


def test_two_workers_equal_one_and_record_remote_failures(tmp_path, fake_opener, tiny_profile, checkpoint):
    """Cells run in 2 spawned worker processes give the records of the in-process sweep; a cell
    failing inside a worker is recorded as failed with the worker's error."""
    torch.set_num_threads(1)
    tasks = resolve_tasks("pocus-cls,udiat-seg")
    broken = Backbone("broken", "resnet18", state={"not.a.resnet.key": torch.zeros(1)})
    backbones = [random_backbone(), load_backbone("anaus", checkpoint), broken]
    plan = SweepPlan(tasks=tuple(t.name for t in tasks), methods=tuple(b.name for b in backbones),
                     seeds=(0,), folds=2, profile=dataclasses.replace(tiny_profile, protocols=("finetune",)))
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}"
        report = run_sweep(out, tasks, backbones, plan, {}, torch.device("cpu"), opener=fake_opener,
                           progress=False, workers=workers, threads=1)
        assert "Cells finished: 8 of 12; failed: 4" in report.read_text()
        runs[workers] = {p.relative_to(out): json.loads(p.read_text()) for p in (out / "cells").rglob("*.json")}
    assert sorted(runs[1]) == sorted(runs[2]) and len(runs[1]) == 12
    for path, one in runs[1].items():
        two = runs[2][path]
        assert one["status"] == two["status"], path
        if one["status"] == "ok":
            for field in ("metrics", "best_epoch", "history", "n_train", "n_val", "n_test"):
                assert one[field] == two[field], (path, field)
        else:
            assert "backbone keys do not match" in one["error"] and "backbone keys do not match" in two["error"]


def test_failed_cell_is_recorded_and_retried(tmp_path, fake_opener, tiny_profile, monkeypatch):
    out = tmp_path / "eval"
    tasks = resolve_tasks("udiat-seg")
    plan = SweepPlan(tasks=("udiat-seg",), methods=("random",), seeds=(0,), folds=2,
                     profile=dataclasses.replace(tiny_profile, protocols=("finetune",)))
    calls = []

    def flaky(key, *args, **kwargs):
        calls.append(key)
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(sweep_module, "run_cell", flaky)
    report = run_sweep(out, tasks, [random_backbone()], plan, {}, torch.device("cpu"),
                       opener=fake_opener, progress=False)
    assert "failed: 2" in report.read_text() and "out of memory (simulated)" in report.read_text()
    run_sweep(out, tasks, [random_backbone()], plan, {}, torch.device("cpu"), opener=fake_opener, progress=False)
    assert len(calls) == 4  # failed cells are retried, not reused


def test_cli_sweep_last_line_names_report(tmp_path, fake_opener, monkeypatch, checkpoint):
    torch.set_num_threads(1)
    monkeypatch.setattr(sweep_module, "default_opener", fake_opener)
    out = tmp_path / "cli"
    args = ["sweep", "--out", str(out), "--tasks", "pocus", "--checkpoint", f"anaus={checkpoint}",
            "--folds", "2", "--resolution", "32", "--epochs", "1", "--max-frames", "20",
            "--batch-size", "8", "--protocols", "finetune,linear"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == f"report: {out / 'report.md'}"
    assert fake_opener.readers["pocus"].loads == 20
    assert sorted(p.name for p in (out / "cells" / "pocus-cls" / "anaus").glob("*.json")) == [
        "linear-seed0-fold0.json", "linear-seed0-fold1.json", "seed0-fold0.json", "seed0-fold1.json"]
    unknown = CliRunner().invoke(main, [*args[:-1], "finetune,probe"])
    assert unknown.exit_code == 2 and "probe" in unknown.output
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished cell was recomputed")

    with monkeypatch.context() as patch:  # OUT/config.toml replays the sweep: every cell is reused
        patch.setattr(sweep_module, "run_cell", must_not_run)
        replay = CliRunner().invoke(main, ["sweep", "--config", str(out / "config.toml")])
    assert replay.exit_code == 0, replay.output
    rebuilt = CliRunner().invoke(main, ["report", str(out)])
    assert rebuilt.exit_code == 0 and rebuilt.stdout.strip() == f"report: {out / 'report.md'}"
    from evaluate.report import TITLES

    with monkeypatch.context() as patch:  # a second sweep of one protocol into the same OUT
        patch.setattr(sweep_module, "run_cell", must_not_run)
        second = CliRunner().invoke(main, [*args[:-1], "linear"])
    assert second.exit_code == 0, second.output
    text = (out / "report.md").read_text()
    assert f"## {TITLES['linear']}" in text and f"## {TITLES['finetune']}" not in text
    both = CliRunner().invoke(main, ["report", str(out), "--protocols", "finetune,linear", "--tasks", "pocus"])
    assert both.exit_code == 0, both.output
    text = (out / "report.md").read_text()
    assert f"## {TITLES['linear']}" in text and f"## {TITLES['finetune']}" in text
    # a protocol no sweep ran for a task: no empty table, and not counted as missing cells
    scoped = CliRunner().invoke(main, ["report", str(out), "--protocols", "finetune,linear,low-label"])
    assert scoped.exit_code == 0, scoped.output
    text = (out / "report.md").read_text()
    assert f"## {TITLES['low-label']}" not in text and f"## {TITLES['finetune']}" in text
    done, planned = re.search(r"Cells finished: (\d+) of (\d+)", text).groups()
    assert done == planned == "8"  # 2 methods x 2 folds x (finetune, linear)
    assert CliRunner().invoke(main, ["report", str(out), "--protocols", "probe"]).exit_code == 2
    # a second seed under one protocol only (make study): both seeds reported, each counted where it ran
    with monkeypatch.context() as patch:
        patch.setattr(sweep_module, "run_cell", must_not_run)
        assert CliRunner().invoke(main, [*args[:-1], "linear"]).exit_code == 0  # seed 0: reused
    seed1 = CliRunner().invoke(main, [*args[:-1], "linear", "--seeds", "1"])
    assert seed1.exit_code == 0, seed1.output
    seeded = CliRunner().invoke(main, ["report", str(out), "--protocols", "finetune,linear", "--seeds", "0,1"])
    assert seeded.exit_code == 0, seeded.output
    text = (out / "report.md").read_text()
    done, planned = re.search(r"Cells finished: (\d+) of (\d+)", text).groups()
    assert done == planned == "12"  # 2 methods x 2 folds x (finetune seed 0, linear seeds 0 and 1)
    assert text.count("Seeds run under this protocol: 0.") == 1
    reported = pq.read_table(out / "results.parquet").to_pylist()
    assert {r["seed"] for r in reported if r["protocol"] == "linear"} == {0, 1}
    assert CliRunner().invoke(main, ["report", str(out), "--seeds", "0,0"]).exit_code == 2
    # the same from a fresh interpreter, where evaluate.protocols is the first module imported
    fresh = subprocess.run([sys.executable, "-m", "evaluate.cli", "report", str(out), "--protocols", "linear"],
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    bad = CliRunner().invoke(main, ["sweep", "--out", str(out), "--tasks", "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output
    assert cells  # module imported for the monkeypatch target above


def test_cli_ablations_are_compared_with_the_full_method(tmp_path, fake_opener, monkeypatch, checkpoint):
    import evaluate.ablations as ablations

    torch.set_num_threads(1)
    monkeypatch.setattr(sweep_module, "default_opener", fake_opener)
    asked = {}

    def fake_ensure(store, out_dir, pretrain_args, seed=0, device="auto", skip=(), **parallel):
        asked.update(store=store, args=pretrain_args, skip=skip)
        for rise, name in ((0.2, "anaus"), (0.1, "anaus-grid")):  # their runs' metrics.jsonl
            run = ablations.run_dir(out_dir, name)
            run.mkdir(parents=True)
            lines = [{"step": s, "loss": 30.0 - s, "backbone/rel_change": 0.01 * s} for s in range(1, 21)]
            lines += [{"step": s, "probe/busi-seg/dice": 0.1 + rise * s / 20, "probe/busi-seg/pixels": 0.07}
                      for s in (0, 10, 20)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        return {name: checkpoint for name in ablations.ABLATIONS if name not in skip}

    monkeypatch.setattr(ablations, "ensure_ablations", fake_ensure)
    out = tmp_path / "abl"
    store = tmp_path / "store"
    store.mkdir()
    result = CliRunner().invoke(main, [
        "sweep", "--out", str(out), "--tasks", "pocus-cls", "--folds", "2", "--resolution", "32",
        "--epochs", "1", "--max-frames", "16", "--batch-size", "8", "--ablations", "--protocols", "finetune",
        "--store", str(store), "--pretrain-args", "--epochs 3 --batch-size 4"])
    assert result.exit_code == 0, result.output
    assert asked["args"] == ("--epochs", "3", "--batch-size", "4") and asked["skip"] == ()
    text = (out / "tests.csv").read_text()
    for method, baseline in (("anaus", "random"), ("anaus", "anaus-grid"), ("anaus", "anaus-noctx"),
                             ("anaus", "anaus-whole"), ("anaus-grid", "random")):
        assert f'"{method}","{baseline}"' in text, (method, baseline)
    report = (out / "report.md").read_text()  # the pre-trainings beside the downstream tables
    section = report.split("## Pre-training")[1].split("\n## ")[0]
    assert "| anaus-grid | 20 | 24.50 -> 14.50 | 0.200 | 0.100 -> 0.200 (peak 0.200 at 20; last quarter 50%) |" in section
    assert "| anaus | 20 |" in section and "0.100 -> 0.300" in section and "anaus-whole" not in section
    assert "`busi-seg/pixels` 0.070" in section and (out / "figures" / "pretraining.png").stat().st_size > 0
    missing_store = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations"])
    assert missing_store.exit_code != 0 and "--store" in missing_store.output
