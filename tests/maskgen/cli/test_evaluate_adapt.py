"""``maskgen evaluate-adapt``: an adaptation's per-class Dice on labelled frames it never trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskgen.cli.adapt import adapt
from maskgen.cli.evaluate_adapt import evaluate_adapt
from maskgen.lpsam.testing import synthetic_pairs
from maskgen.lpsam.testset import as_test_set, frame_digests


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, ddti_sample, ddti_folder):
    """A 2-step adaptation on a 10-image DDTI folder (the adapt CLI test's data)."""
    base = tmp_path_factory.mktemp("evaluate_adapt")
    root = ddti_folder(base / "ddti", ddti_sample)
    out = base / "lpsam"
    result = CliRunner().invoke(adapt, ["--out", str(out), "--dataset", "ddti", "--root", str(root), "--steps1", "2",
                                        "--steps2", "2", "--batch-size", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out, root


def test_as_test_set_leaves_out_the_frames_seen_in_training_and_counts_them():
    pairs = synthetic_pairs(n_per_dataset=6, size=32)
    seen = set(frame_digests(pairs.images[[0, 3]]))
    test, excluded = as_test_set(pairs, seen)
    assert excluded == 2 and test.held_out.tolist() == [i not in (0, 3) for i in range(len(pairs))]
    assert len(set(frame_digests(pairs.images))) == len(pairs)  # digests tell the frames apart


def test_on_its_own_data_it_measures_exactly_the_adaptation_held_out_split(adapted, tmp_path):
    """The adaptation's own folder as test data: its training frames are left out, and what is left
    is its held-out split, scored as report.json scored it."""
    out, root = adapted
    result = CliRunner().invoke(evaluate_adapt, [str(out), "--dataset", "ddti", "--root", str(root),
                                                 "--device", "cpu", "--out", str(tmp_path / "own")])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    test = json.loads((tmp_path / "own.json").read_text())
    held = report["data"]["datasets"]["ddti"]["held_out"]
    assert test["excluded"] == 10 - held and test["checked_training"] is True
    assert test["data"]["datasets"]["ddti"]["held_out"] == held
    assert test["heldout"] == report["heldout"]
    assert f"{held} test frames ({10 - held} left out" in result.output
    md = (tmp_path / "own.md").read_text()
    assert "## Latent prompts" in md and f"{10 - held} of them left out" in md


def test_without_the_training_check_every_frame_is_a_test_frame(adapted, tmp_path):
    out, root = adapted
    result = CliRunner().invoke(evaluate_adapt, [str(out), "--dataset", "ddti", "--root", str(root), "--device",
                                                 "cpu", "--no-check-training", "--no-figure", "--out",
                                                 str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    test = json.loads((tmp_path / "all.json").read_text())
    assert test["excluded"] == 0 and test["checked_training"] is False
    (quality,) = test["heldout"]["latent"].values()
    assert quality["frames"] == 10 and 0 <= quality["dice_mean"] <= 1
    assert "not checked" in (tmp_path / "all.md").read_text() and "figure" not in test
    assert not (tmp_path / "all_overlays.png").exists()


def test_new_frames_are_scored_and_the_default_report_lies_in_the_adaptation(adapted, tmp_path):
    """Frames the adaptation never saw (the same images mirrored) are all test frames."""
    out, root = adapted
    new = tmp_path / "ddti"
    for sub in ("img", "label"):
        (new / sub).mkdir(parents=True)
        for f in sorted((root / sub).iterdir()):
            Image.fromarray(np.asarray(Image.open(f))[:, ::-1].copy()).save(new / sub / f.name)
    result = CliRunner().invoke(evaluate_adapt, [str(out), "--dataset", "ddti", "--root", str(new), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    test = json.loads((out / "test.json").read_text())
    assert test["excluded"] == 0 and test["data"]["datasets"]["ddti"]["held_out"] == 10
    assert test["sources"] == [["ddti", str(new)]] and (out / "test.md").exists()
    assert "test ddti/" in result.output and "(GT click " in result.output and ", GT box " in result.output
    png = out / "test_overlays.png"  # best / median / worst test frame per class, linked from test.md
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and test["figure"] == "test_overlays.png"
    assert "![test overlays](test_overlays.png)" in (out / "test.md").read_text()


@pytest.mark.parametrize("args, message", [
    ([], "--phantom DIR or --dataset"),
    (["--dataset", "camus"], "no anatomy class of it"),
    (["--phantom", "PH", "--dataset", "ddti"], "not both"),
    (["--phantom", "PH"], "has no ddti folder"),
    (["--dataset", "ddti", "--root", "A", "--root", "B"], "2 --root for 1 --dataset"),
])
def test_bad_test_data_is_refused_before_anything_is_written(adapted, tmp_path, args, message):
    out, _ = adapted
    args = [a.replace("PH", str(tmp_path / "phantom")) for a in args]
    (tmp_path / "phantom").mkdir()
    before = sorted(p.name for p in out.iterdir())
    result = CliRunner().invoke(evaluate_adapt, [str(out), *args])
    assert result.exit_code != 0 and message in result.output
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_folder_that_is_no_adaptation_is_refused_in_one_line(tmp_path):
    result = CliRunner().invoke(evaluate_adapt, [str(tmp_path), "--phantom", str(tmp_path)])
    assert result.exit_code == 1 and "maskgen adapt --out DIR" in result.output and "Traceback" not in result.output


def test_a_test_set_of_only_training_frames_is_an_error(adapted, monkeypatch):
    out, root = adapted
    import maskgen.lpsam.testset as testset
    from maskgen.lpsam.data import load_pairs

    every = set(frame_digests(load_pairs([("ddti", str(root))], 256, 0.5, 0).images))
    monkeypatch.setattr(testset, "training_digests", lambda adapt_dir: every)
    before = (out / "test.json").read_bytes() if (out / "test.json").exists() else None
    result = CliRunner().invoke(evaluate_adapt, [str(out), "--dataset", "ddti", "--root", str(root), "--device", "cpu"])
    assert result.exit_code != 0 and "every one of the 10 frames" in result.output
    assert ((out / "test.json").read_bytes() if (out / "test.json").exists() else None) == before


def test_heldout_by_thickness_on_a_phantom_scores_only_frames_the_adaptation_never_trained_on(adapted):
    """scripts/heldout_by_thickness.py --phantom DIR: the adaptation's datasets under DIR, its
    training frames left out (here DIR holds its own data, so what is left is its held-out split),
    its class list in the model's order."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "scripts" / "heldout_by_thickness.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, root = adapted
    pairs = script.phantom_test_set(str(out), str(root.parent), 256)
    held = json.loads((out / "report.json").read_text())["data"]["datasets"]["ddti"]["held_out"]
    assert int(pairs.held_out.sum()) == held and len(pairs) == 10
    assert [c.name for c in pairs.classes] == [c["name"] for c in json.loads((out / "lpsam.json").read_text())["classes"]]
