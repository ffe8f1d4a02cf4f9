"""`pretrain export --format hf`: a folder timm loads offline (local-dir:), with the run's
backbone bit for bit, the pre-training heads, a Hub model card and the sweep's results."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from pretrain.checkpoint import CHECKPOINT_NAME, read_checkpoint
from pretrain.cli import main
from pretrain.export import backbone_state
from pretrain.hf_export import head_state

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "run"
    res = CliRunner().invoke(main, ["run", "--store", str(tiny_store), "--out", str(out), "--epochs", "1",
                                    "--batch-size", "4", "--resolution", "32", "--device", "cpu",
                                    "--scales", "2", "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    return out


def _fake_sweep(path, run_dir):
    """A sweep folder written by evaluate's own writer: our method `anaus` and `random`."""
    from evaluate.report import write_results

    path.mkdir()
    rows = []
    for method, base in (("anaus", 0.5), ("random", 0.4)):
        for fold in range(3):
            for seed in range(2):
                rows.append({"task": "busi-seg", "fold": fold, "method": method, "seed": seed, "metric": "dice",
                             "value": base + 0.1 * fold + 0.02 * seed, "best_epoch": 1, "n_train": 8,
                             "n_val": 2, "n_test": 2, "seconds": 1.0})
    write_results(path, rows)
    (path / "backbones.json").write_text(json.dumps([
        {"name": "random", "arch": "resnet18", "path": None, "sha256": None, "provenance": {}},
        {"name": "anaus", "arch": "resnet18", "path": "x.safetensors", "sha256": "0" * 64,
         "provenance": {"run_dir": str(run_dir)}}]))
    return path


def test_hf_folder_loads_in_timm_offline_with_the_runs_weights(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sweep = _fake_sweep(tmp_path / "sweep", run_dir)
    out = tmp_path / "hf"
    res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "hf", "--out", str(out),
                                    "--results", str(sweep)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "pretraining_heads.safetensors",
                                                "README.md", "anaus_provenance.json"}
    online = read_checkpoint(run_dir / CHECKPOINT_NAME)["online"]
    expected = backbone_state(online)

    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert model.num_classes == 0 and model.num_features == 512
    got = model.state_dict()
    assert set(got) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (3, 32, 32)
    assert tuple(cfg["mean"]) == pytest.approx((0.485, 0.456, 0.406))
    data_cfg = timm.data.resolve_data_config({}, model=model)
    assert data_cfg["input_size"] == (3, 32, 32) and data_cfg["crop_pct"] == 1.0

    # fine-tuning with a new head: the backbone loads, the head is fresh
    clf = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=3)
    torch.testing.assert_close(clf.state_dict()["layer4.1.bn2.weight"], expected["layer4.1.bn2.weight"])
    assert clf.get_classifier().out_features == 3
    # the older route: architecture + file overlay
    old = timm.create_model("resnet18", pretrained=True, num_classes=0,
                            pretrained_cfg_overlay=dict(file=str(out / "model.safetensors")))
    torch.testing.assert_close(old.state_dict()["conv1.weight"], expected["conv1.weight"], rtol=0, atol=0)

    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "resnet18" and config["num_features"] == 512
    heads = load_file(out / "pretraining_heads.safetensors")
    assert set(heads) == set(head_state(online))
    assert any(k.startswith("fpn.") for k in heads) and any(k.startswith("predictor.") for k in heads)
    torch.testing.assert_close(heads["projector.0.weight"], online["projector.0.weight"])


def test_model_card_has_front_matter_provenance_and_results(run_dir, tmp_path):
    from huggingface_hub import ModelCard

    sweep = _fake_sweep(tmp_path / "sweep", run_dir)
    out = tmp_path / "hf"
    res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "hf", "--out", str(out),
                                    "--results", str(sweep)])
    assert res.exit_code == 0, res.output
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "timm" and "ultrasound" in card.data.tags
    prov = json.loads((out / "anaus_provenance.json").read_text())
    run_info = json.loads((run_dir / "run.json").read_text())
    for value in (prov["weights_sha256"], run_info["inputs"]["store"]["manifest_sha256"],
                  run_info["inputs"]["lpsam_checkpoint_sha256"], prov["code_revision"]):
        assert value in card.text
    # anaus: fold means over seeds 0.51, 0.61, 0.71 -> 61.0 ± 10.0; random 51.0 ± 10.0
    assert "| busi-seg | dice | 61.0 ± 10.0 | 51.0 ± 10.0 | 3 |" in card.text


def test_bad_results_folder_or_method_is_one_line_and_writes_nothing(run_dir, tmp_path):
    out = tmp_path / "hf"
    res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "hf", "--out", str(out),
                                    "--results", str(tmp_path)])
    assert res.exit_code != 0 and "not a" not in res.output and "results.parquet" in res.output
    sweep = _fake_sweep(tmp_path / "sweep", run_dir)
    res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "hf", "--out", str(out),
                                    "--results", str(sweep), "--method", "imagenet"])
    assert res.exit_code != 0 and "'imagenet' is not in" in res.output and "anaus, random" in res.output
    res = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(out), "--method", "anaus"])
    assert res.exit_code != 0 and "--format hf" in res.output
    assert not out.exists()


def test_config_describes_these_weights_not_timms_imagenet_default(run_dir, tmp_path):
    from pretrain.hf_export import export_run_hf

    export_run_hf(run_dir, tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())["pretrained_cfg"]
    assert cfg["tag"] == "anaus" and cfg["license"] == "other" and "origin_url" not in cfg
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "No downstream results were given" in card
    # re-export: byte-identical weights (the sha256 in the card stays the backbone's identity)
    first = (tmp_path / "hf" / "model.safetensors").read_bytes()
    export_run_hf(run_dir, tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == first
