"""Non-finite weights and losses: refused when loaded, never saved, a NaN cell fails alone."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from faults import TINY_RUN
from safetensors.torch import save_file
from torch import nn

from evaluate.backbones import CheckpointError, load_backbone
from pretrain.checkpoint import NonFiniteStateError, load_checkpoint, save_checkpoint
from pretrain.cli import main as pretrain_main

pytestmark = pytest.mark.usefixtures("one_thread")



def _resnet18_state(nan_key: str | None = None) -> dict[str, torch.Tensor]:
    import torchvision

    state = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
             if not k.startswith("fc.")}
    if nan_key:
        state[nan_key] = torch.full_like(state[nan_key], float("nan"))
    return state


def test_evaluate_refuses_nan_weights(tmp_path):
    path = tmp_path / "nan.safetensors"
    save_file(_resnet18_state("layer3.0.bn1.running_var"), str(path))
    with pytest.raises(CheckpointError, match="layer3.0.bn1.running_var holds NaN"):
        load_backbone("x", path)
    from evaluate.cli import main as evaluate_main

    result = CliRunner().invoke(evaluate_main, ["sweep", "--root", str(tmp_path), "--out", str(tmp_path / "e"),
                                                "--tasks", "busi-seg", "--checkpoint", f"x={path}"])
    assert result.exit_code == 2 and "holds NaN" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "e").exists()


def _tiny_nets():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    target = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    return online, target, torch.optim.SGD(online.parameters(), lr=0.1)


def test_a_non_finite_state_is_never_saved_and_the_good_one_is_named(tmp_path):
    """Issue: checkpoint.pt held inf in a BatchNorm running variance and was called good."""
    online, target, opt = _tiny_nets()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, online=online, target=target, optimizer=opt, step=3, config={})
    before = path.read_bytes()
    online[1].running_var[0] = float("inf")
    with pytest.raises(NonFiniteStateError, match=r"1.running_var holds inf.*checkpoint.pt \(step 3\)"):
        save_checkpoint(path, online=online, target=target, optimizer=opt, step=6, config={})
    assert path.read_bytes() == before


def test_resume_refuses_a_non_finite_checkpoint(tmp_path):
    """A checkpoint written before this check (or damaged) is refused by --resume, by name."""
    online, target, opt = _tiny_nets()
    state = {"online": online.state_dict(), "target": target.state_dict(), "optimizer": opt.state_dict(),
             "step": 4, "rng": torch.get_rng_state(), "config": {}, "world_size": 1}
    state["target"]["0.weight"] = torch.full_like(state["target"]["0.weight"], float("nan"))
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="target network.*0.weight holds NaN"):
        load_checkpoint(tmp_path / "checkpoint.pt", online=online, target=target, optimizer=opt)


def test_runaway_lr_warns_and_stops_before_saving_inf(tiny_store, tmp_path, caplog):
    """--lr 1e8: weights grew to 6e25 without a word; now a warning, and no inf is saved."""
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        result = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out),
                                                    *TINY_RUN, "--lr", "1e8", "--checkpoint-every", "1"])
    assert "weights have grown" in caplog.text and "learning rate is likely too high" in caplog.text
    if result.exit_code:  # BatchNorm statistics overflowed: named, and the last good one kept
        assert "not saved as a checkpoint" in result.output and "Last good checkpoint" in result.output
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["online"].values() if v.is_floating_point())


def test_nan_stop_names_the_good_checkpoint_and_resume_lowers_lr(tiny_store, tmp_path, monkeypatch):
    """A NaN loss at step 3: the message names checkpoint.pt (step 2); --resume --lr X continues
    with the lower rate, recorded in run.json; a higher --lr on resume is refused."""
    import pretrain.train as train

    out = tmp_path / "run"
    real = train.compute_loss
    calls = {"n": 0}

    def nan_at_third(*args, **kwargs):
        calls["n"] += 1
        loss, parts = real(*args, **kwargs)
        return (loss * float("nan"), parts) if calls["n"] == 3 else (loss, parts)

    monkeypatch.setattr(train, "compute_loss", nan_at_third)
    first = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out), *TINY_RUN,
                                               "--checkpoint-every", "2", "--lr", "0.3"])
    assert first.exit_code == 1 and "loss is nan at step 2" in first.output
    assert "Last good checkpoint: " in first.output and "checkpoint.pt (step 2)" in first.output
    monkeypatch.setattr(train, "compute_loss", real)
    higher = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out), *TINY_RUN,
                                                "--resume", "--lr", "1.0"])
    assert higher.exit_code == 1 and "may only lower the learning rate" in higher.output
    lower = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out), *TINY_RUN,
                                               "--resume", "--lr", "0.03"])
    assert lower.exit_code == 0, lower.output
    info = json.loads((out / "run.json").read_text())
    assert info["inputs"]["resumed"] == {"from_step": 2, "changes": {"base_lr": {"from": 0.3, "to": 0.03}}}
    assert info["config"]["optim"]["base_lr"] == 0.03
    lrs = [json.loads(ln)["lr"] for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == 6 and lrs[2] < lrs[1] / 5  # the lower rate from step 3 on
