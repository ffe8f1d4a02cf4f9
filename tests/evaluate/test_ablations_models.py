"""Ablations through the pretrain CLI (fake runner), and the Mask R-CNN protocol on tiny input."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluate.ablations import ABLATIONS, ORACLE, PretrainError, ensure_ablations
from evaluate.backbones import random_backbone
from evaluate.models import maskrcnn_targets
from evaluate.profiles import Profile, build_profile
from evaluate.train import Split, fit, make_head, predict


class FakePretrain:
    """Records commands; `export` writes the target file, like the real CLI."""

    def __init__(self, fail_on: str | None = None):
        self.commands, self.fail_on = [], fail_on

    def __call__(self, command, stdout=None, stderr=None):
        self.commands.append(command)
        if self.fail_on and self.fail_on in command:
            return subprocess.CompletedProcess(command, 1)
        if command[1] == "export":
            Path(command[command.index("--out") + 1]).write_bytes(b"x")
        return subprocess.CompletedProcess(command, 0)


def test_ablations_train_only_what_is_missing(tmp_path):
    (tmp_path / "backbones").mkdir()
    (tmp_path / "backbones" / "anaus-grid.safetensors").write_bytes(b"done")
    runner = FakePretrain()
    out = ensure_ablations(tmp_path / "store", tmp_path, ("--epochs", "2"), runner=runner)
    assert set(out) == set(ABLATIONS)
    runs = [c for c in runner.commands if c[1] == "run"]
    assert len(runs) == len(ABLATIONS) - 1 and not any("grid" in c for c in runs)  # grid already exported
    noctx = next(c for c in runs if "--lambda-ctx" in c)
    assert noctx[noctx.index("--lambda-ctx") + 1] == "0" and "--epochs" in noctx
    assert noctx[noctx.index("--store") + 1] == str(tmp_path / "store")
    again = FakePretrain()
    ensure_ablations(tmp_path / "store", tmp_path, runner=again)
    assert again.commands == []
    # the oracle arm: the full method's options on the ground-truth store, the same budget and seed
    oracle = FakePretrain()
    out = ensure_ablations(tmp_path / "store", tmp_path, ("--epochs", "2"), seed=3, runner=oracle,
                           oracle_store=tmp_path / "oracle")
    assert list(out) == [*ABLATIONS, ORACLE]
    (run,) = [c for c in oracle.commands if c[1] == "run"]
    full = next(c for c in runs if "--mask-source" not in c and "--lambda-ctx" not in c)
    assert run[run.index("--store") + 1] == str(tmp_path / "oracle")
    assert run[run.index("--out") + 1] == str(tmp_path / "backbones" / f"{ORACLE}-run")
    assert run[run.index("--seed") + 1] == "3" and run[run.index("--epochs") + 1] == "2"

    def without(command, options=("--store", "--out", "--seed")):  # option names and their values
        flagged = {i for i, a in enumerate(command) if a in options}
        return [a for i, a in enumerate(command) if i not in flagged and i - 1 not in flagged]

    assert without(run) == without(full)  # the oracle's command is the full method's but for its store


def test_ablations_train_concurrently_one_device_each(tmp_path):
    """With 2 workers the two missing pre-trainings run at the same time (a barrier both must
    reach), on their own device and thread budget."""
    barrier = threading.Barrier(2, timeout=20)

    class Concurrent(FakePretrain):
        def __call__(self, command, stdout=None, stderr=None):
            if command[1] == "run":
                barrier.wait()  # breaks (and raises) if the runs were sequential
            return super().__call__(command, stdout, stderr)

    runner = Concurrent()
    out = ensure_ablations(tmp_path / "store", tmp_path, runner=runner, skip=("anaus", "anaus-whole"), workers=2,
                           devices=["dev0", "dev1"], threads=1)
    assert list(out) == ["anaus-grid", "anaus-noctx"]
    runs = {c[c.index("--out") + 1].rsplit("/", 1)[-1]: c for c in runner.commands if c[1] == "run"}
    assert runs["anaus-grid-run"][runs["anaus-grid-run"].index("--device") + 1] == "dev0"
    assert runs["anaus-noctx-run"][runs["anaus-noctx-run"].index("--device") + 1] == "dev1"
    assert all(c[c.index("--threads") + 1] == "1" for c in runs.values())


def test_ablation_failure_names_the_command(tmp_path):
    with pytest.raises(PretrainError, match="exited with 1"):
        ensure_ablations(tmp_path / "store", tmp_path, runner=FakePretrain(fail_on="grid"),
                         skip=("anaus", "anaus-whole", "anaus-noctx"))


def test_maskrcnn_targets_one_instance_per_component():
    masks = torch.zeros(2, 16, 16, dtype=torch.uint8)
    masks[0, 2:5, 3:7] = 1
    masks[0, 10:14, 10:12] = 1
    targets = maskrcnn_targets(masks)
    assert targets[0]["boxes"].tolist() == [[3, 2, 7, 5], [10, 10, 12, 14]]
    assert targets[0]["masks"].shape == (2, 16, 16) and targets[1]["boxes"].shape == (0, 4)


def test_maskrcnn_protocol_trains_and_predicts_masks():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    profile = Profile(name="t", resolution=64, max_frames=0, cls_epochs=1, seg_epochs=1, batch_size=2,
                      seg_head="maskrcnn")
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[:, 20:40, 16:44] = 1
    images = (masks * 180 + 20).astype(np.uint8)
    split = Split(torch.from_numpy(images), torch.from_numpy(masks))
    head = make_head("segmentation", profile)
    result = fit(head, random_backbone(), split, split, 1, torch.device("cpu"), seed=0)
    pred = predict(head, result.model, split.images, torch.device("cpu"), 2)
    assert pred.shape == (2, 64, 64) and pred.dtype == bool
    assert set(result.history[0]) >= {"val_dice", "val_ppv", "val_sensitivity", "train_loss"}


def test_profiles_validate_input():
    assert build_profile("full").seg_head == "maskrcnn" and build_profile("full").resolution == 224
    assert build_profile("quick", resolution=128).resolution == 128
    for bad in ({"resolution": 100}, {"seg_head": "unet"}, {"val_fraction": 1.0}):
        with pytest.raises(ValueError):
            build_profile("quick", **bad)
    with pytest.raises(ValueError, match="profile"):
        build_profile("huge")


@pytest.mark.slow
def test_ablations_through_the_real_pretrain_cli(tmp_path):
    """Contract check: `pretrain run` + `pretrain export` subprocesses -> loadable backbones."""
    from evaluate.backbones import load_backbone
    from maskgen.store.testing import make_synthetic_store

    store = tmp_path / "store"
    make_synthetic_store(store, n=16, size=64, k=4)
    budget = ("--epochs", "1", "--batch-size", "8", "--resolution", "64", "--max-steps", "1")
    exported = ensure_ablations(store, tmp_path / "eval", budget, device="cpu")
    assert set(exported) == set(ABLATIONS)
    for name, path in exported.items():
        backbone = load_backbone(name, path)
        assert backbone.arch == "resnet18" and backbone.provenance, name
