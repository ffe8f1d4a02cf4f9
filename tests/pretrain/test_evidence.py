"""What makes pre-training measurable: the step-0 reference, the whole-frame control, the online
probe, backbone drift, the recipes and the pictures of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from maskgen.datasets.frames import Frame, FrameRef
from pretrain.cli import main
from pretrain.export import export_initial, fpn_path, initial_state
from pretrain.loader import LoaderConfig
from pretrain.masks import dominant_ids
from pretrain.model import ModelConfig, build_online
from pretrain.monitor import BackboneDrift, last_bn_gammas
from pretrain.optim import RECIPES, OptimConfig, build_optimizer, resolve_recipe
from pretrain.probe import (
    ProbeConfig,
    dense_ridge_dice,
    group_codes,
    knn_accuracy,
    load_probe,
    load_probes,
)
from pretrain.step import ObjectiveConfig, source_masks
from pretrain.train import RunConfig, run

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kw) -> RunConfig:
    objective = ObjectiveConfig(resolution=32, scales=2, k_samples=4)
    return RunConfig(model=ModelConfig(scales=2), objective=objective,
                     loader=LoaderConfig(batch_size=8, shuffle_buffer=6, cache="ram"),
                     optim=OptimConfig(epochs=2, warmup_epochs=0.5), device="cpu", **kw)


def test_step0_export_is_the_start_of_pretraining(tiny_store, tmp_path):
    """`pretrain init --seed S` writes exactly the weights `pretrain run --seed S` starts from:
    a run stopped before its first step exports the same backbone and FPN, tensor for tensor."""
    run(tiny_store, tmp_path / "run", tiny_config(max_steps=0), seed=3)
    result = CliRunner().invoke(main, ["init", "--seed", "3", "--out", str(tmp_path / "init.safetensors")])
    assert result.exit_code == 0, result.output
    for a, b in ((tmp_path / "run" / "backbone.safetensors", tmp_path / "init.safetensors"),
                 (fpn_path(tmp_path / "run" / "backbone.safetensors"), fpn_path(tmp_path / "init.safetensors"))):
        ta, tb = load_file(str(a)), load_file(str(b))
        assert sorted(ta) == sorted(tb)
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
    other = load_file(str(export_initial(tmp_path / "s4.safetensors", seed=4) and tmp_path / "s4.safetensors"))
    assert not torch.equal(other["conv1.weight"], load_file(str(tmp_path / "init.safetensors"))["conv1.weight"])
    sidecar = json.loads((tmp_path / "init.json").read_text())
    assert sidecar["seed"] == 3 and sidecar["step"] == 0 and "zero_init_last" in sidecar["init"]
    # timm's recipe: the last BatchNorm of every residual block starts at gamma = 0
    state = load_file(str(tmp_path / "init.safetensors"))
    assert all(float(state[f"layer{i}.{j}.bn2.weight"].abs().max()) == 0 for i in range(1, 5) for j in (0, 1))


def test_fpn_export_loads_into_maskrcnn_fpn(tmp_path):
    from torchvision.models import resnet18
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    export_initial(tmp_path / "b.safetensors", seed=0)
    body = _resnet_fpn_extractor(resnet18(), 5)
    fpn = load_file(str(tmp_path / "b.fpn.safetensors"))
    body.fpn.load_state_dict(fpn, strict=True)
    online = initial_state(seed=0)
    assert torch.equal(body.fpn.inner_blocks[0][0].weight, online["encoder.fpn.inner_blocks.0.0.weight"])


def test_whole_frame_masks_give_one_anatomy_per_frame():
    frames = torch.zeros(3, 32, 32, dtype=torch.uint8)
    masks = source_masks(frames, torch.zeros(3, 4, 32, 32, dtype=torch.bool), "whole")
    assert masks.shape == (3, 4, 32, 32) and bool(masks[:, 0].all()) and not bool(masks[:, 1:].any())
    ids = dominant_ids(masks.float(), 4)
    assert bool((ids == 0).all())
    with pytest.raises(ValueError, match="whole"):
        source_masks(frames, masks, "bogus")


def test_knn_probe_is_leave_one_group_out():
    feats = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]] * 4), dim=1)
    labels = torch.tensor([0, 0, 1, 1] * 4)
    singletons = torch.arange(16)
    assert knn_accuracy(feats, labels, singletons, 2, k=3) == 1.0
    # each frame's only look-alikes share its group: they may not vote, the others mislead
    twins = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    assert knn_accuracy(twins, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1]), 2, k=1) == 0.0
    assert knn_accuracy(twins, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3]), 2, k=1) == 1.0
    assert group_codes(np.array(["b", "a", "b", 3], dtype=object)).tolist() == [2, 1, 2, 0]


class ProbeReader:
    """busi-like frames: class c is a disc of brightness 60 + 80 c at a frame-dependent place,
    with its mask (class 2, ``normal``, has none); two frames per group."""

    def refs(self):
        return [FrameRef("busi", f"img/{i:03d}.png", 0, f"g{i // 2}", i % 3, True) for i in range(36)]

    def load(self, ref):
        i = int(ref.source[4:7])
        rng = np.random.default_rng(i)
        image = rng.integers(0, 40, size=(40, 40)).astype(np.uint8)
        yy, xx = np.mgrid[:40, :40]
        cy, cx = 12 + (i * 7) % 16, 12 + (i * 5) % 16
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 60
        image[disc] = 60 + 80 * ref.label
        mask = (disc & (ref.label != 2)).astype(np.uint8)
        return Frame(ref, image, mask)


def test_run_logs_probe_drift_and_draws_curves(tiny_store, tmp_path, monkeypatch):
    import maskgen.datasets.registry

    monkeypatch.setattr(maskgen.datasets.registry, "open_dataset", lambda name, root=None: ProbeReader())
    probe_set = load_probe(ProbeConfig(task="busi-cls"), 32)
    assert probe_set.images.shape == (36, 32, 32) and len(set(probe_set.groups.tolist())) == 18
    assert probe_set.chance() == pytest.approx(1 / 3) and not probe_set.dense
    cls, seg = load_probes(ProbeConfig(task="busi-cls,busi-seg"), 32)
    assert cls.name == "busi-cls" and seg.dense and seg.labels is None
    assert seg.masks.shape == (24, 32, 32) and bool((seg.masks.reshape(24, -1).max(1) == 1).all())  # normal: excluded
    with pytest.raises(ValueError, match="not a task"):
        load_probes(ProbeConfig(task="busi-cls,bogus-seg"), 32)
    with pytest.raises(ValueError, match="one dataset's folder"):
        load_probes(ProbeConfig(task="busi-cls,pocus-cls", root=str(tmp_path)), 32)
    cfg = tiny_config(probe=ProbeConfig(task="busi-cls,busi-seg", every=2))
    out = run(tiny_store, tmp_path / "run", cfg, seed=0)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in records if "probe/busi-cls/knn_acc" in r]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in probes] == [0, 2, 4]
    assert all(0 <= r["probe/busi-cls/knn_acc"] <= 1 and 0 <= r["probe/busi-seg/dice"] <= 1 for r in probes)
    assert all(r["probe/busi-cls/chance"] == pytest.approx(1 / 3) for r in probes)
    assert len({r["probe/busi-seg/pixels"] for r in probes}) == 1  # the reference is computed once
    assert all(r["backbone/rel_change"] > 0 for r in steps)
    assert all(k in steps[0] for k in ("lr", "ema_momentum", "align/0", "align/1", "pred/0", "pred/1"))
    for name in ("curves.png", "view_pair.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backbone_drift_is_relative_frobenius_change():
    online = build_online(ModelConfig(), seed=0)
    drift = BackboneDrift(online.encoder.body)
    assert drift(online.encoder.body)["backbone/rel_change"] == 0.0
    weights = [p for p in online.encoder.body.parameters()]
    norm0 = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in weights)))
    with torch.no_grad():
        weights[0].add_(1.0)
    expected = float(np.sqrt(weights[0].numel())) / norm0
    assert drift(online.encoder.body)["backbone/rel_change"] == pytest.approx(expected, rel=1e-4)
    assert len(last_bn_gammas(online.encoder.body)) == 8  # resnet18: 2 blocks x 4 stages


def test_recipes_and_optimizers():
    assert resolve_recipe("auto", 192) == "paper" and resolve_recipe("auto", 16) == "small-batch"
    assert resolve_recipe("paper", 16) == "paper"
    with pytest.raises(ValueError, match="--recipe"):
        resolve_recipe("fast", 16)
    assert RECIPES["paper"] == {"optimizer": "lars", "base_lr": 0.3, "trust_coeff": 1e-3, "weight_decay": 1e-6}
    model = torch.nn.Linear(3, 2)
    assert isinstance(build_optimizer(model, OptimConfig(optimizer="adamw"), 1e-3), torch.optim.AdamW)
    lars = build_optimizer(model, OptimConfig(trust_coeff=0.02), 0.1)
    assert lars.param_groups[0]["trust_coeff"] == 0.02
    with pytest.raises(ValueError, match="--optimizer"):
        OptimConfig(optimizer="sgd")


def test_cli_recipe_is_recorded(tiny_store, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--store", str(tiny_store), "--out", str(out), "--epochs", "1",
                                       "--batch-size", "8", "--resolution", "32", "--scales", "2",
                                       "--k-samples", "4", "--max-steps", "1", "--device", "cpu",
                                       "--cache", "ram", "--trust-coefficient", "0.05"])
    assert result.exit_code == 0, result.output
    optim = json.loads((out / "run.json").read_text())["config"]["optim"]
    assert optim["recipe"] == "small-batch" and optim["trust_coeff"] == 0.05
    assert optim["base_lr"] == RECIPES["small-batch"]["base_lr"]


def test_small_batch_recipe_resumes_exactly(tiny_store, tmp_path):
    """AdamW's state (moments, step counts) travels in the checkpoint like LARS's."""

    class Killed(Exception):
        pass

    def kill_at_2(step):
        if step == 2:
            raise Killed

    cfg = tiny_config(checkpoint_every=1, max_steps=3)
    cfg = RunConfig(**{**cfg.__dict__, "optim": OptimConfig(epochs=2, warmup_epochs=0.5, recipe="small-batch",
                                                           **RECIPES["small-batch"])})
    run(tiny_store, tmp_path / "a", cfg, seed=1)
    with pytest.raises(Killed):
        run(tiny_store, tmp_path / "b", cfg, seed=1, on_step=kill_at_2)
    run(tiny_store, tmp_path / "b", cfg, seed=1, resume=True)
    a = load_file(str(tmp_path / "a" / "backbone.safetensors"))
    b = load_file(str(tmp_path / "b" / "backbone.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], initial_state(seed=1)["encoder.body.conv1.weight"])


def _disc_masks(n: int = 40, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """n frames with one disc each at a random place; two frames per group."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.integers(8, size - 8, 2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 <= 30
    return masks, np.arange(n) // 2


def test_dense_probe_reads_out_what_the_features_hold():
    """Features that hold the mask give a high held-out Dice, features of pure noise a low one."""
    masks, groups = _disc_masks()
    share = torch.nn.functional.avg_pool2d(torch.from_numpy(masks).float().unsqueeze(1), 8)  # (n,1,4,4)
    cells = share.permute(0, 2, 3, 1)
    oracle = dense_ridge_dice(lambda idx: cells[idx], masks, groups)
    noise = torch.randn(len(masks), 4, 4, 16, generator=torch.Generator().manual_seed(0))
    blind = dense_ridge_dice(lambda idx: noise[idx], masks, groups)
    assert oracle > 0.7 and blind < 0.35 and oracle > blind + 0.4
    with pytest.raises(ValueError, match="multiple of 8"):
        dense_ridge_dice(lambda idx: cells[idx], masks[:, :30, :30], groups)


def test_dense_probe_never_fits_on_the_frames_it_scores():
    """Each group's foreground carries its own random direction: a probe that saw the held-out
    group would read it out perfectly; fitted on the other groups only, it cannot."""
    masks, groups = _disc_masks()
    share = torch.nn.functional.avg_pool2d(torch.from_numpy(masks).float().unsqueeze(1), 8)
    directions = torch.randn(int(groups.max()) + 1, 256, generator=torch.Generator().manual_seed(1))
    cells = share.permute(0, 2, 3, 1) * directions[torch.from_numpy(groups)][:, None, None, :]
    held_out = dense_ridge_dice(lambda idx: cells[idx], masks, groups)
    shared = share.permute(0, 2, 3, 1) * directions[:1, None, None, :]   # one direction for all groups
    assert dense_ridge_dice(lambda idx: shared[idx], masks, groups) > 0.7
    assert held_out < 0.5
