"""``maskgen adapt`` end to end on a tiny DDTI folder in its native (SAMUS-style) layout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from maskgen.cli.adapt import adapt


def test_adapt_cli_writes_weights_report_and_resumes(tmp_path, ddti_root):
    out = tmp_path / "lpsam"
    args = ["--out", str(out), "--dataset", "ddti", "--root", str(ddti_root), "--steps1", "2", "--steps2", "2",
            "--batch-size", "2", "--checkpoint-every", "1", "--device", "cpu"]
    result = CliRunner().invoke(adapt, args)
    assert result.exit_code == 0, result.output
    for name in ("lpsam.safetensors", "lpsam.json", "report.json", "report.md", "run.json",
                 "checkpoints/phase1.safetensors", "checkpoints/phase2.safetensors"):
        assert (out / name).exists(), name
    meta = json.loads((out / "lpsam.json").read_text())
    assert meta["input_size"] == 256 and meta["weights"] == "full" and meta["base_checkpoint"] is None
    assert [c["dataset"] for c in meta["classes"]] == ["ddti"]
    report = json.loads((out / "report.json").read_text())
    (name, quality), = report["heldout"]["latent"].items()
    assert name.startswith("ddti/") and quality["frames"] >= 1 and 0 <= quality["dice_mean"] <= 1
    assert report["data"]["datasets"]["ddti"]["frames"] == 10
    held = report["data"]["datasets"]["ddti"]  # a DDTI image is its own group: as many groups as frames
    assert held["held_out_groups"] == held["held_out"] >= 1
    assert f"{held['held_out']} held out, from {held['held_out_groups']} groups" in (out / "report.md").read_text()
    assert f"frames from {held['held_out_groups']} groups)" in result.output
    assert "held-out" in result.output and "Dice" in (out / "report.md").read_text()
    # beside the latent prompts: one click at the nodule's innermost pixel and its box, per class
    click, box = (report["heldout"][mode][name]["dice_mean"] for mode in ("point", "box"))
    train = report["training_fit"][name]  # the same class on frames it trained on, unaugmented
    assert train["frames"] == held["frames"] - held["held_out"] and 0 <= train["dice_mean"] <= 1
    assert f"(GT click {click:.3f}, GT box {box:.3f}; training frames {train['dice_mean']:.3f})" in result.output
    gap = f"{quality['dice_mean'] - train['dice_mean']:+.3f}"
    assert f"| {name} | {train['frames']} | {train['dice_mean']:.3f} | {quality['dice_mean']:.3f} | {gap} |" in (
        out / "report.md").read_text()
    assert f"| {name} | {quality['dice_mean']:.3f} | {click:.3f} | {box:.3f} |" in (out / "report.md").read_text()
    scores = report["score_quality"]  # predicted score vs true IoU on the held-out frames
    assert scores["pairs"] == quality["frames"] + quality["empty_gt"] and scores["figure"] == "score_vs_iou.png"
    assert (out / "score_vs_iou.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![predicted score vs true IoU](score_vs_iou.png)" in (out / "report.md").read_text()
    first = (out / "lpsam.safetensors").read_bytes()
    again = CliRunner().invoke(adapt, ["--config", str(out / "config.toml")])  # the run's own config:
    assert again.exit_code == 0, again.output                                 # resumes, same weights
    assert (out / "lpsam.safetensors").read_bytes() == first
    rerun = json.loads((out / "report.json").read_text())["phases"]
    for phase in ("phase1", "phase2"):  # the training time is the original run's, not the rerun's
        assert rerun[phase]["seconds"] == round(report["phases"][phase]["seconds"], 1) > 0, phase


def test_adapt_cli_rejects_bad_input(tmp_path):
    runner = CliRunner()
    res = runner.invoke(adapt, ["--out", str(tmp_path / "o"), "--phantom", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "maskgen phantom" in res.output
    res = runner.invoke(adapt, ["--out", str(tmp_path / "o"), "--dataset", "ddti", "--dataset", "tg3k",
                                "--root", str(tmp_path)])
    assert res.exit_code != 0 and "--root" in res.output
    res = runner.invoke(adapt, ["--out", str(tmp_path / "o"), "--held-out", "1.5"])
    assert res.exit_code != 0 and "1.5" in res.output


@pytest.fixture
def phase_settings(tmp_path, ddti_root, monkeypatch):
    """Run ``maskgen adapt FLAGS`` up to the training call and return the two PhaseSettings."""
    import maskgen.lpsam.adapt

    def run(flags):
        seen = {}

        def capture(out, pairs, config, phase1, phase2, *args, **kwargs):
            seen.update(phase1=phase1, phase2=phase2)
            raise SystemExit(0)

        monkeypatch.setattr(maskgen.lpsam.adapt, "adapt", capture)
        result = CliRunner().invoke(adapt, ["--out", str(tmp_path / "o"), "--dataset", "ddti", "--root",
                                            str(ddti_root), "--device", "cpu", *flags])
        assert result.exit_code == 0, result.output
        return seen["phase1"], seen["phase2"]

    return run


@pytest.mark.parametrize("flags, paste1, paste2, randomised", [
    ([], 0.5, 0.5, True),                                   # the default: copy-paste in both phases
    (["--no-paste-phase2"], 0.5, 0.0, True),
    (["--paste", "0", "--no-augment"], 0.0, 0.0, False),    # the former recipe
])
def test_adapt_cli_copy_paste_settings_per_phase(phase_settings, flags, paste1, paste2, randomised):
    phase1, phase2 = phase_settings(flags)
    assert (phase1.augment.paste, phase2.augment.paste) == (paste1, paste2)
    assert all((s.augment.p > 0) == randomised for s in (phase1, phase2))


@pytest.mark.parametrize("flags, train_decoder, replay", [
    ([], True, 1.0),                                            # the default: decoder trained, GT prompts replayed
    (["--frozen-decoder"], False, 0.0),                         # the former default
    (["--prompt-replay", "0"], True, 0.0),                      # decoder trained on the latent tokens alone
    (["--train-decoder", "--prompt-replay", "0.5"], True, 0.5),
])
def test_adapt_cli_decoder_and_prompt_replay_reach_phase2(phase_settings, flags, train_decoder, replay):
    phase1, phase2 = phase_settings(flags)
    assert (phase2.train_decoder, phase2.prompt_replay) == (train_decoder, replay)
    assert phase1.prompt_replay == 0.0


@pytest.mark.parametrize("flags, frame_weighted, train_detail", [
    ([], False, False),                                          # the default: by mask, detail branch frozen
    (["--frame-weighted"], True, False),
    (["--train-detail"], False, True),
])
def test_adapt_cli_loss_weighting_and_detail_training_reach_phase2_only(phase_settings, flags, frame_weighted,
                                                                         train_detail):
    phase1, phase2 = phase_settings(flags)
    assert (phase2.frame_weighted, phase2.train_detail) == (frame_weighted, train_detail)
    assert (phase1.frame_weighted, phase1.train_detail) == (False, False)


def test_adapt_cli_refuses_to_train_a_detail_branch_it_does_not_have(tmp_path, ddti_root):
    out = tmp_path / "o"
    refused = CliRunner().invoke(adapt, ["--out", str(out), "--dataset", "ddti", "--root", str(ddti_root),
                                         "--detail-channels", "0", "--train-detail"])
    assert refused.exit_code == 2 and "--train-detail" in refused.output and "detail branch" in refused.output
    assert not out.exists()


def test_adapt_cli_refuses_prompt_replay_with_a_frozen_decoder(tmp_path, ddti_root):
    out = tmp_path / "o"
    refused = CliRunner().invoke(adapt, ["--out", str(out), "--dataset", "ddti", "--root", str(ddti_root),
                                         "--frozen-decoder", "--prompt-replay", "1"])
    assert refused.exit_code == 2 and "--train-decoder" in refused.output and "--prompt-replay" in refused.output
    assert not out.exists()                                                    # nothing written


def test_adapt_help_states_the_default_budgets():
    """The help's [tiny N, ViT M] defaults are PHASE_DEFAULTS' (the help cannot import it: torch)."""
    from maskgen.lpsam.config import PHASE_DEFAULTS

    text = " ".join(CliRunner().invoke(adapt, ["--help"], terminal_width=400).output.split())
    tiny, vit = PHASE_DEFAULTS["tiny"], PHASE_DEFAULTS["vit"]
    for phase in (1, 2):
        steps = f"Phase-{phase} steps [tiny {getattr(tiny, f'steps{phase}')}, ViT {getattr(vit, f'steps{phase}')}]"
        rate = f"Phase-{phase} learning rate [tiny {getattr(tiny, f'lr{phase}'):.0e}, ViT {getattr(vit, f'lr{phase}'):.0e}]"
        assert steps in text and rate.replace("e-0", "e-") in text, (steps, rate)
