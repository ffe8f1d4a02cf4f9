"""The loop: exact resume, non-finite loss handling, export loads in timm and torchvision, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import timm
import torch
import torchvision
from click.testing import CliRunner
from safetensors.torch import load_file

from pretrain.cli import main
from pretrain.loader import LoaderConfig
from pretrain.model import ModelConfig
from pretrain.optim import OptimConfig
from pretrain.step import ObjectiveConfig
from pretrain.train import MetricsWriter, NonFiniteLossError, RunConfig, run

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(epochs=3, batch_size=8, lambda_ctx=1.0, device="cpu", cache="ram", **kw) -> RunConfig:
    objective = ObjectiveConfig(resolution=32, scales=2, k_samples=4, lambda_ctx=lambda_ctx)
    return RunConfig(model=ModelConfig(scales=2), objective=objective,
                     loader=LoaderConfig(batch_size=batch_size, shuffle_buffer=6, cache=cache),
                     optim=OptimConfig(epochs=epochs, warmup_epochs=0.5), device=device, **kw)


class Killed(Exception):
    pass


def _kill_at(n):
    def hook(step):
        if step == n:
            raise Killed(step)
    return hook


def test_resume_is_exact(tiny_store, tmp_path):
    """3 epochs of 2 steps; killed after step 4 (last checkpoint at 3, mid-epoch 1), resumed:
    same weights, same losses as a run never killed."""
    cfg = tiny_config(checkpoint_every=3)
    run(tiny_store, tmp_path / "a", cfg, seed=5)
    with pytest.raises(Killed):
        run(tiny_store, tmp_path / "b", cfg, seed=5, on_step=_kill_at(4))
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    with pytest.raises(FileExistsError, match="--resume"):
        run(tiny_store, tmp_path / "b", cfg, seed=5)
    with pytest.raises(ValueError, match="other settings for objective"):
        run(tiny_store, tmp_path / "b", tiny_config(checkpoint_every=3, lambda_ctx=0.5), seed=5, resume=True)
    other_world = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True) | {"world_size": 2}
    (tmp_path / "c").mkdir()
    torch.save(other_world, tmp_path / "c" / "checkpoint.pt")
    with pytest.raises(ValueError, match="made by 2 rank"):
        run(tiny_store, tmp_path / "c", cfg, seed=5, resume=True)
    run(tiny_store, tmp_path / "b", cfg, seed=5, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for net in ("online", "target"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), f"{net}.{k} differs after resume"
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 7))
    ref = [json.loads(x)["loss"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["loss"] for x in lines] == ref
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["seed"] == 5 and len(info["inputs"]["store"]["manifest_sha256"]) == 64
    assert info["inputs"]["lpsam_checkpoint_sha256"] == "0" * 64


def test_metrics_jsonl_truncated_on_resume_and_tensorboard_scalars(tmp_path, monkeypatch):
    """JSON lines past the resumed step are dropped; with tensorboard installed every metric but
    the step goes to a SummaryWriter under RUN_DIR/tensorboard, closed (flushed) at the end."""
    events = []

    class FakeWriter:
        def __init__(self, logdir):
            events.append(("open", logdir))

        def add_scalar(self, key, value, step):
            events.append((key, value, step))

        def close(self):
            events.append(("close",))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)))
    writer = MetricsWriter(path, start=2)
    writer.write({"step": 3, "loss": 0.25, "lr": 0.1})
    writer.close()
    assert [json.loads(x) for x in path.read_text().splitlines()] == [
        {"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}, {"step": 3, "loss": 0.25, "lr": 0.1}]
    assert events == [("open", str(tmp_path / "tensorboard")), ("loss", 0.25, 3), ("lr", 0.1, 3), ("close",)]


def test_non_finite_loss_stops_keeping_checkpoint(tiny_store, tmp_path, monkeypatch):
    import pretrain.train as train_mod

    real = train_mod.compute_loss
    calls = {"n": 0}

    def poisoned(*args, **kw):
        loss, parts = real(*args, **kw)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), parts

    monkeypatch.setattr(train_mod, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 2.*checkpoint.pt"):
        run(tiny_store, tmp_path / "r", tiny_config(batch_size=4, checkpoint_every=1), seed=0)
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["step"] == 2


def _check_loads(path):
    tensors = load_file(str(path))
    # the classifier is an all-zero placeholder, never pre-trained weights
    assert not tensors["fc.weight"].any() and not tensors["fc.bias"].any()
    assert tensors["fc.weight"].shape == (1000, 512)
    # exactly the call users copy from timm's docs
    model = timm.create_model("resnet18", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path)))
    for k, v in model.state_dict().items():
        assert torch.equal(v, tensors[k]), k
    headless = timm.create_model("resnet18", pretrained=True, num_classes=0,
                                 pretrained_cfg_overlay=dict(file=str(path)))
    tv = torchvision.models.resnet18()
    tv.load_state_dict(tensors, strict=True)
    torch.testing.assert_close(tv.conv1.weight, tensors["conv1.weight"])
    x = torch.randn(1, 3, 64, 64)
    headless.eval(), tv.eval()
    torch.testing.assert_close(headless(x), torch.flatten(torch.nn.Sequential(*list(tv.children())[:-1])(x), 1))


def test_cli_smoke_and_export(tiny_store, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", "--store", str(tiny_store), "--out", str(out), "--epochs", "1",
                                    "--batch-size", "4", "--resolution", "32", "--device", "cpu",
                                    "--scales", "2", "--max-steps", "2", "--mask-source", "superpixel"])
    assert res.exit_code == 0, res.output
    assert (out / "backbone.safetensors").exists() and (out / "backbone.json").exists()
    _check_loads(out / "backbone.safetensors")
    res = CliRunner().invoke(main, ["export", str(out), "--out", str(tmp_path / "anaus.safetensors")])
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "anaus.json").read_text())
    assert side["arch"] == "resnet18" and side["step"] == 2 and side["lpsam_checkpoint_sha256"] == "0" * 64
    assert len(side["store"]["manifest_sha256"]) == 64 and side["config"]["objective"]["mask_source"] == "superpixel"
    _check_loads(tmp_path / "anaus.safetensors")
    # same weights, same bytes: evaluate identifies a backbone by its sha256
    assert (tmp_path / "anaus.safetensors").read_bytes() == (out / "backbone.safetensors").read_bytes()
    bad = CliRunner().invoke(main, ["run", "--store", str(tiny_store), "--out", str(tmp_path / "x"),
                                    "--resolution", "48", "--device", "cpu"])
    assert bad.exit_code != 0 and "multiple of 32" in bad.output


def test_never_imports_sam():
    mods = ["pretrain", "pretrain.cli", "pretrain.checkpoint", "pretrain.corruption", "pretrain.distributed",
            "pretrain.export", "pretrain.loader", "pretrain.losses", "pretrain.masks", "pretrain.model",
            "pretrain.optim", "pretrain.schedules", "pretrain.step", "maskgen.store.testing", "pretrain.train",
            "pretrain.views"]
    code = (f"import sys, {', '.join(mods)}; "
            "bad = [m for m in sys.modules if m.startswith(('segment_anything', 'maskgen.lpsam'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_cuda_run_bf16_channels_last_device_cache(tiny_store, tmp_path):
    run(tiny_store, tmp_path / "g", tiny_config(epochs=1, device="auto", cache="device"), seed=0)
    lines = [json.loads(x) for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(torch.isfinite(torch.tensor(x["loss"])) for x in lines)
    _check_loads(tmp_path / "g" / "backbone.safetensors")
