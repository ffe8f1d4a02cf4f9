"""A user's mistake with `evaluate` ends in one clear line and a non-zero exit, before any output."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import evaluate.ablations as ablations
import evaluate.sweep as sweep_module
from evaluate.cli import main


def error_line(result) -> str:
    """The one line that says what was wrong (click prints usage lines above it)."""
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def never_pretrain(monkeypatch):
    """Pre-training must not start: fail loudly if the sweep gets that far."""
    def refuse(*args, **kwargs):
        raise AssertionError("pre-training started before the options were checked")

    monkeypatch.setattr(ablations, "ensure_ablations", refuse)
    monkeypatch.setattr(ablations.subprocess, "run", refuse)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    path.mkdir()
    return path


def test_report_on_a_folder_that_is_not_a_sweep(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not a sweep output folder" in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_bogus_pretrain_args_are_refused_before_training(tmp_path, store, never_pretrain):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations", "--store", str(store),
                                       "--pretrain-args", "--bogus"])
    assert result.exit_code == 2
    line = error_line(result)
    assert "--pretrain-args" in line and "No such option '--bogus'" in line
    assert not out.exists()
    bad_value = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations", "--store", str(store),
                                          "--pretrain-args", "--resolution 50"])
    assert bad_value.exit_code == 2 and "50" in error_line(bad_value) and not out.exists()
    taken = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations", "--store", str(store),
                                      "--pretrain-args", "--epochs 2 --seed 3"])
    assert taken.exit_code == 2 and "--seed: set by evaluate sweep itself" in error_line(taken)
    assert not out.exists()


def test_bad_seeds_are_refused_before_training(tmp_path, store, never_pretrain):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations", "--store", str(store),
                                       "--seeds", "abc"])
    assert result.exit_code == 2
    assert "'abc' is not a comma list of integers" in error_line(result)
    assert not out.exists()


def test_missing_store_for_ablations(tmp_path, never_pretrain):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations", "--store", str(tmp_path / "no")])
    assert result.exit_code == 2 and "does not exist" in error_line(result) and not out.exists()


def test_sweep_exits_non_zero_when_cells_failed(tmp_path, fake_opener, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(sweep_module, "default_opener", fake_opener)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(sweep_module, "run_cell", broken)
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["sweep", "--out", str(out), "--tasks", "pocus", "--folds", "2",
                                       "--resolution", "32", "--epochs", "1", "--max-frames", "20",
                                       "--batch-size", "8", "--protocols", "finetune,linear"])
    assert result.exit_code == 1
    assert "0 of 1 task(s) not evaluated, 4 cell(s) failed" in result.stderr  # 2 folds x 2 protocols
    assert (out / "report.md").is_file()  # the report still says which cells and why


def test_repeated_single_value_option_is_an_error(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", "--out", str(out), "--profile", "quick", "--profile", "full"])
    assert result.exit_code == 2 and "--profile was given 2 times" in error_line(result)
    assert not out.exists()


def test_a_bad_checkpoint_is_refused_before_pretraining(tmp_path, store, never_pretrain):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", "--out", str(out), "--ablations", "--store", str(store),
                                       "--checkpoint", f"mine={tmp_path / 'missing.safetensors'}"])
    assert result.exit_code == 2 and "missing.safetensors" in error_line(result)
    assert not out.exists()


def test_a_failed_pretraining_is_one_line(tmp_path, store, monkeypatch):
    def fails(*args, **kwargs):
        raise ablations.PretrainError("`pretrain run` exited with 1: CUDA out of memory (full log: x.log)")

    monkeypatch.setattr(ablations, "ensure_ablations", fails)
    result = CliRunner().invoke(main, ["sweep", "--out", str(tmp_path / "out"), "--ablations", "--store",
                                       str(store)])
    assert result.exit_code == 1 and "CUDA out of memory (full log: x.log)" in error_line(result)
