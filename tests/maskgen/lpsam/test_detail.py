"""The detail branch: frame features at the mask resolution added to the decoder's upscaled
embedding (``--detail-channels``)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from maskgen.lpsam.artifacts import load_adapt_dir, save_adapt_dir
from maskgen.lpsam.checkpoint import convert_sam_state_dict, is_new_key
from maskgen.lpsam.config import LPSAMConfig, get_config
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.testing import MICRO, synthetic_pairs
from maskgen.lpsam.train import PhaseSettings, run_phase

DETAILED = replace(MICRO, detail_channels=8)


def _perturb(module: torch.nn.Module, scale: float = 0.05) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * scale)


def _assert_round_trips(config: LPSAMConfig, tmp_path):
    """Save a model of ``config`` with a trained-looking branch, load it back, check it predicts
    the same; returns the loaded model."""
    pairs = synthetic_pairs(n_per_dataset=2, size=64, seed=0)
    torch.manual_seed(0)
    model = build_lpsam(config, len(pairs.classes)).eval()
    _perturb(model.adapter.detail)
    save_adapt_dir(tmp_path / "adapt", model, pairs.classes, None, {})
    loaded, _ = load_adapt_dir(tmp_path / "adapt")
    x = model.preprocess(torch.randint(0, 256, (1, 64, 64), dtype=torch.uint8))
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_latent(x)[0], model.predict_latent(x)[0])
    return loaded


def _adapter_count(*options: str) -> int:
    """Phase-1 adapter parameters that ``maskgen adapt --print-params --model tiny OPTIONS`` prints."""
    from click.testing import CliRunner

    from maskgen.cli.adapt import adapt

    result = CliRunner().invoke(adapt, ["--print-params", "--model", "tiny", *options])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "phase1_adapter" in row)
    return int(line.split("(")[1].rstrip(")").replace(",", ""))


@pytest.mark.parametrize(("name", "scale", "mask_side"),
                         [("micro", 1, 32), ("tiny", 1, 64), ("tiny", 2, 128), ("vit_b", 1, 128), ("vit_b", 2, 256)])
def test_detail_features_have_the_mask_resolution_and_decoder_width(name, scale, mask_side):
    config = replace(MICRO if name == "micro" else get_config(name), detail_channels=8, detail_scale=scale)
    with torch.device("meta"):
        model = build_lpsam(config, num_classes=2)
        x = torch.zeros(2, 3, config.input_size, config.input_size)
        features = model.detail_features(x)
    assert config.mask_size == mask_side
    assert tuple(features.shape) == (2, config.prompt_dim // 8, mask_side, mask_side)


def test_untrained_branch_leaves_the_masks_unchanged_and_a_trained_one_changes_them():
    torch.manual_seed(0)
    plain = build_lpsam(MICRO, num_classes=3).eval()
    detailed = build_lpsam(DETAILED, num_classes=3).eval()
    missing, unexpected = detailed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("adapter.detail.") for k in missing)
    frames = torch.randint(0, 256, (2, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        x = plain.preprocess(frames)
        ref, ref_iou = plain.predict_latent(x)
        out, iou = detailed.predict_latent(x)
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(iou, ref_iou)
        _perturb(detailed.adapter.detail)
        changed, _ = detailed.predict_latent(x)
    assert (changed - ref).abs().max() > 1e-3


def test_detail_scale_doubles_the_mask_side_and_an_untrained_branch_only_resamples():
    """Enlarging the upscaled embedding commutes with the per-mask dot product, so an untrained
    scale-2 model's logits are the plain model's, bilinearly enlarged."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    plain = build_lpsam(MICRO, num_classes=2).eval()
    scaled = build_lpsam(replace(DETAILED, detail_scale=2), num_classes=2).eval()
    scaled.load_state_dict(plain.state_dict(), strict=False)
    assert scaled.config.mask_size == 2 * MICRO.mask_size == MICRO.input_size
    assert scaled.adapter.detail is not None
    x = plain.preprocess(torch.randint(0, 256, (2, 64, 64), dtype=torch.uint8))
    with torch.no_grad():
        ref, _ = plain.predict_latent(x)
        out, _ = scaled.predict_latent(x)
    assert out.shape[-1] == 2 * ref.shape[-1]
    torch.testing.assert_close(out, F.interpolate(ref, scale_factor=2, mode="bilinear", align_corners=False),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="detail_scale"):
        replace(MICRO, detail_scale=2)  # enlarging without a branch adds nothing


def test_decode_rows_index_embeddings_and_detail_alike():
    torch.manual_seed(0)
    model = build_lpsam(DETAILED, num_classes=2).eval()
    _perturb(model.adapter.detail)
    x = model.preprocess(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
    rows = torch.tensor([2, 0, 0, 1])
    sparse = torch.randn(4, 1, DETAILED.prompt_dim)
    with torch.no_grad():
        emb, detail = model.encode(x), model.detail_features(x)
        by_rows, iou_rows = model.decode(emb, sparse, detail=detail, rows=rows)
        gathered, iou = model.decode(emb[rows], sparse, detail=detail[rows])
    torch.testing.assert_close(by_rows, gathered)
    torch.testing.assert_close(iou_rows, iou)


def test_phase1_trains_the_branch_and_phase2_leaves_it(tmp_path):
    pairs = synthetic_pairs(n_per_dataset=6, size=64, seed=2)
    torch.manual_seed(0)
    model = build_lpsam(DETAILED, len(pairs.classes))

    def branch():
        return {k: v.clone() for k, v in model.adapter.detail.state_dict().items()}

    start = branch()
    run_phase(model, pairs, 1, PhaseSettings(3, 1e-3, batch_size=2), torch.device("cpu"), tmp_path / "p1", True)
    after1 = branch()
    assert not torch.equal(after1["proj.weight"], start["proj.weight"])  # the zero projection learns
    run_phase(model, pairs, 2, PhaseSettings(3, 1e-3, batch_size=2), torch.device("cpu"), tmp_path / "p2", False)
    for key, value in branch().items():
        torch.testing.assert_close(value, after1[key], msg=key)  # weights and BatchNorm statistics


def test_config_dict_keeps_old_fingerprints_and_round_trips_the_branch(tmp_path):
    assert "detail_channels" not in MICRO.to_dict()  # adaptations made before the branch resume
    assert LPSAMConfig.from_dict(MICRO.to_dict()).detail_channels == 0
    assert LPSAMConfig.from_dict(DETAILED.to_dict()) == DETAILED
    assert LPSAMConfig.from_dict(replace(DETAILED, detail_scale=2).to_dict()).detail_scale == 2
    with pytest.raises(ValueError, match="detail_channels"):
        replace(MICRO, detail_channels=-1)
    _assert_round_trips(DETAILED, tmp_path)


def test_an_official_checkpoint_leaves_only_the_new_branch_unset():
    from segment_anything import build_sam_vit_b

    with torch.device("meta"):
        official = build_sam_vit_b()
        model = build_lpsam(replace(get_config("vit_b"), detail_channels=32), num_classes=2)
    converted = convert_sam_state_dict(official.state_dict(), model.config)
    missing = set(model.state_dict()) - set(converted)
    assert any(k.startswith("adapter.detail.") for k in missing)
    assert all(is_new_key(k) for k in missing)


def test_adapt_cli_counts_the_branch_and_refuses_a_scale_without_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)  # no phantom here: the bad option must be named before the data

    from maskgen.cli.adapt import adapt

    tiny = get_config("tiny")
    assert (tiny.detail_channels, tiny.detail_scale, tiny.mask_size) == (16, 2, 128)  # the default
    plain, default = _adapter_count("--detail-channels", "0"), _adapter_count()
    assert _adapter_count("--detail-channels", "16", "--detail-scale", "2") == default
    branch = build_lpsam(tiny, 5).adapter.detail
    assert default - plain == sum(p.numel() for p in branch.parameters())
    assert _adapter_count("--detail-channels", "8") < default  # a narrower branch, same scale
    result = CliRunner().invoke(adapt, ["--out", "unused", "--detail-channels", "0", "--detail-scale", "2"])
    assert result.exit_code == 2 and "detail_channels" in result.output, result.output
    assert not (tmp_path / "unused").exists()


def test_an_adaptation_made_before_the_branch_loads_without_it(tmp_path):
    """lpsam.json of an adaptation made before the branch has no detail keys: it rebuilds as it
    was (64x64 logits), not as today's tiny default."""
    import json

    pairs = synthetic_pairs(n_per_dataset=2, size=256, seed=0)
    former = replace(get_config("tiny"), detail_channels=0, detail_scale=1)
    torch.manual_seed(0)
    model = build_lpsam(former, len(pairs.classes)).eval()
    save_adapt_dir(tmp_path / "old", model, pairs.classes, None, {})
    meta = json.loads((tmp_path / "old" / "lpsam.json").read_text())
    assert not {"detail_channels", "detail_scale"} & set(meta["model"])
    loaded, _ = load_adapt_dir(tmp_path / "old")
    assert loaded.adapter.detail is None and loaded.config.mask_size == 64


def test_a_default_tiny_adaptation_folder_predicts_full_size_masks(tmp_path):
    from maskgen.lpsam.predictor import load_predictor
    from maskgen.lpsam.proposals import ProposalConfig
    from maskgen.lpsam.testing import make_random_adapt_dir

    make_random_adapt_dir(tmp_path / "adapt", config=get_config("tiny"))
    predictor = load_predictor(tmp_path / "adapt", "cpu", proposals=ProposalConfig(mode="latent+boxes"))
    assert predictor.config["model"]["detail_channels"] == 16
    frames = torch.randint(0, 256, (2, 256, 256), dtype=torch.uint8)
    probs, scores = predictor(frames)
    assert probs.shape[:2] == scores.shape and probs.shape[-2:] == (256, 256) and probs.shape[1] > 5
    assert torch.isfinite(probs).all() and 0 <= float(probs.min()) <= float(probs.max()) <= 1


def test_a_pyramid_branch_sees_the_texture_around_a_pixel_and_starts_at_zero():
    """``detail_levels`` 3: same shape, zero at start, and a pixel's feature depends on frame
    texture 12 px away, which one 3x3 stack at stride 2 (receptive field 7 px) never sees."""
    from maskgen.lpsam.adapters import DetailBranch

    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    far = x.clone()
    far[..., 44:48, 44:48] += 3.0  # 12-15 px from pixel (32, 32) of the frame
    for levels in (1, 3):
        branch = DetailBranch(8, 4, stride=2, levels=levels).eval()
        with torch.no_grad():
            assert tuple(branch(x).shape) == (1, 4, 32, 32) and not branch(x).any()  # zero projection
            _perturb(branch, 0.3)
            delta = (branch(far) - branch(x))[..., 16, 16].abs().max()  # mask pixel (16, 16) = frame (32, 32)
        assert (delta > 1e-4) == (levels > 1), (levels, float(delta))
    assert sum(p.numel() for p in DetailBranch(8, 4, 2, levels=3).parameters()) > \
        sum(p.numel() for p in DetailBranch(8, 4, 2).parameters())


def test_detail_levels_round_trip_keep_old_fingerprints_and_need_a_branch(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from maskgen.cli.adapt import adapt

    assert "detail_levels" not in DETAILED.to_dict()  # adaptations made before the pyramid resume
    pyramid = replace(DETAILED, detail_levels=2)
    assert LPSAMConfig.from_dict(pyramid.to_dict()) == pyramid
    with pytest.raises(ValueError, match="detail_levels"):
        replace(MICRO, detail_levels=2)  # no branch to make a pyramid of
    loaded = _assert_round_trips(pyramid, tmp_path)
    assert loaded.config.detail_levels == 2

    monkeypatch.chdir(tmp_path)
    counts = {levels: _adapter_count("--detail-levels", levels) for levels in ("1", "3")}
    branch3 = build_lpsam(replace(get_config("tiny"), detail_levels=3), 5).adapter.detail
    branch1 = build_lpsam(get_config("tiny"), 5).adapter.detail
    assert counts["3"] - counts["1"] == sum(p.numel() for p in branch3.parameters()) - \
        sum(p.numel() for p in branch1.parameters())
    result = CliRunner().invoke(adapt, ["--out", "unused", "--detail-channels", "0", "--detail-levels", "2"])
    assert result.exit_code == 2 and "detail_levels" in result.output, result.output
    assert not (tmp_path / "unused").exists()
