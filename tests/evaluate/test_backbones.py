"""Checkpoint loading: timm and torchvision state dicts, key mapping, arch inference, refusals."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from evaluate.backbones import (
    CheckpointError,
    canonical_keys,
    infer_arch,
    load_backbone,
    parse_checkpoint_option,
)


def _same_weights(model, state):
    own = model.state_dict()
    return all(torch.equal(own[k], v.to(own[k].dtype)) for k, v in state.items() if k in own)


def test_timm_safetensors_features_only_export(tmp_path):
    """What `pretrain export` writes: timm ResNet names, no fc, safetensors + JSON sidecar."""
    torch.manual_seed(0)
    timm_model = timm.create_model("resnet18", pretrained=False)
    state = {k: v.contiguous() for k, v in timm_model.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "anaus.safetensors"
    save_file(state, str(path))
    (tmp_path / "anaus.json").write_text('{"code_revision": "abc", "epochs": 2}')
    backbone = load_backbone("anaus", path)
    assert backbone.arch == "resnet18" and backbone.provenance["epochs"] == 2
    assert len(backbone.sha256) == 64
    model = backbone.build()
    assert isinstance(model, torchvision.models.ResNet)
    assert _same_weights(model, state)
    assert not _same_weights(torchvision.models.resnet18(), state)


def test_torchvision_pth_wrapped_in_module_prefix(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet34()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in tv.state_dict().items()}}
    path = tmp_path / "imagenet.pth"
    torch.save(wrapped, path)
    backbone = load_backbone("imagenet", path)
    assert backbone.arch == "resnet34"
    assert "fc.weight" not in backbone.state
    assert _same_weights(backbone.build(), {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")})


def test_bottleneck_arch_inference_and_mismatch(tmp_path):
    state = canonical_keys(torchvision.models.resnet50().state_dict())
    assert infer_arch(state) == "resnet50"
    path = tmp_path / "r50.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="resnet50"):
        load_backbone("x", path, arch="resnet18")


def test_missing_and_foreign_keys_are_named(tmp_path):
    state = canonical_keys(torchvision.models.resnet18().state_dict())
    state.pop("layer3.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"layer3\.0\.conv1\.weight.*extra\.weight"):
        load_backbone("bad", path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_backbone("evil", path)


def test_not_a_resnet_and_option_parsing(tmp_path):
    path = tmp_path / "vit.safetensors"
    save_file({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="not a plain ResNet"):
        load_backbone("vit", path)
    assert parse_checkpoint_option("anaus=runs/a.safetensors")[0] == "anaus"
    for bad in ("anaus", "=x", "random=x.pth", "a b=x"):
        with pytest.raises(ValueError):
            parse_checkpoint_option(bad)
