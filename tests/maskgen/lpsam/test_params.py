"""Trainable parameter counts, compared like with like with the paper's (13 M in phase 1;
11.1 M in phase 2, a count that includes the trainable mask decoder)."""

from __future__ import annotations

import pytest
import torch

from maskgen.lpsam.config import get_config
from maskgen.lpsam.model import build_lpsam, parameter_counts
from maskgen.lpsam.train import PhaseSettings, phase_trainable_counts, set_trainable


@pytest.fixture(scope="module")
def vit_b_meta():
    with torch.device("meta"):
        return build_lpsam(get_config("vit_b"), num_classes=5)  # camus 3 + ddti 1 + tg3k 1


def test_vit_b_counts_against_paper(vit_b_meta):
    counts = parameter_counts(vit_b_meta)
    assert abs(counts["phase1_adapter"] - 13e6) <= 0.15 * 13e6, counts
    assert 85e6 < counts["sam"] < 95e6  # SAM ViT-B is about 91 M
    trainable = phase_trainable_counts(vit_b_meta)
    # like with like: the paper's 11.1 M phase 2 includes the decoder; ours is 15.1 M (the LPE
    # alone is 11.1 M), i.e. our latent prompt engine is about 4 M larger than the paper's
    assert trainable["phase2_decoder"] == counts["phase2_lpe"] + counts["mask_decoder"]
    assert 15.0e6 < trainable["phase2_decoder"] < 15.3e6, trainable


def test_phases_train_their_modules_and_the_iou_head(vit_b_meta):
    counts = parameter_counts(vit_b_meta)
    phase1 = sum(p.numel() for p in set_trainable(vit_b_meta, 1, train_base=False))
    assert phase1 == counts["phase1_adapter"] + counts["iou_head"]  # the IoU loss is used: its head learns
    phase2 = sum(p.numel() for p in set_trainable(vit_b_meta, 2, train_base=False))
    assert phase2 == counts["phase2_lpe"] + counts["iou_head"]
    assert all(not p.requires_grad for p in vit_b_meta.image_encoder.parameters())
    assert all(not p.requires_grad for p in vit_b_meta.mask_decoder.transformer.parameters())
    no_iou = PhaseSettings(steps=0, lr=1.0, iou_weight=0.0)  # the term dropped: the head stays as it is
    assert sum(p.numel() for p in set_trainable(vit_b_meta, 2, False, no_iou)) == counts["phase2_lpe"]
    decoder = PhaseSettings(steps=0, lr=1.0, train_decoder=True)
    params = set_trainable(vit_b_meta, 2, False, decoder)
    assert sum(p.numel() for p in params) == counts["phase2_lpe"] + counts["mask_decoder"]
    assert all(p.requires_grad for p in vit_b_meta.mask_decoder.parameters())


def test_print_params_cli():
    from click.testing import CliRunner

    from maskgen.cli.adapt import adapt

    result = CliRunner().invoke(adapt, ["--print-params", "--model", "vit_b"])
    assert result.exit_code == 0, result.output
    assert "phase1_adapter" in result.output and "12." in result.output
    assert "phase2_decoder     15.147 M" in result.output


def _trainable(*options: str) -> dict[str, int]:
    """The trainable counts that ``maskgen adapt --print-params OPTIONS`` prints."""
    from click.testing import CliRunner

    from maskgen.cli.adapt import adapt

    result = CliRunner().invoke(adapt, ["--print-params", *options])
    assert result.exit_code == 0, result.output
    rows = result.output.split("trainable:")[1].splitlines()
    return {row.split()[0]: int(row.split("(")[1].rstrip(")").replace(",", "")) for row in rows if "(" in row}


def _saved_and_loaded(config, folder):
    """A model of ``config`` saved as an adaptation folder and loaded back; asserts the loaded one
    predicts what the saved one did."""
    from maskgen.lpsam.artifacts import load_adapt_dir, save_adapt_dir
    from maskgen.lpsam.testing import synthetic_pairs

    pairs = synthetic_pairs(n_per_dataset=2, size=64, seed=0)
    torch.manual_seed(0)
    model = build_lpsam(config, len(pairs.classes)).eval()
    save_adapt_dir(folder, model, pairs.classes, None, {})
    loaded, _ = load_adapt_dir(folder)
    x = model.preprocess(torch.randint(0, 256, (1, 64, 64), dtype=torch.uint8))
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_latent(x)[0], model.predict_latent(x)[0])
    return loaded


def test_a_wider_tiny_decoder_round_trips_and_only_tiny_takes_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from maskgen.cli.adapt import adapt
    from maskgen.lpsam.config import with_decoder_dim
    from maskgen.lpsam.testing import MICRO

    tiny = get_config("tiny")
    wide = with_decoder_dim(tiny, 128)
    assert (wide.prompt_dim, wide.decoder_mlp_dim, wide.lpe_mlp_dim) == (128, 512, 512)
    assert (wide.embed_dim, wide.depth, wide.detail_channels) == (tiny.embed_dim, tiny.depth, tiny.detail_channels)
    assert with_decoder_dim(tiny, tiny.prompt_dim) == tiny
    for name, dim in (("vit_b", 128), ("tiny", 100)):
        with pytest.raises(ValueError, match="decoder"):
            with_decoder_dim(get_config(name), dim)

    loaded = _saved_and_loaded(with_decoder_dim(MICRO, 64), tmp_path / "adapt")
    assert loaded.config.prompt_dim == 64 and loaded.mask_decoder.transformer_dim == 64

    monkeypatch.chdir(tmp_path)
    default, wider = _trainable(), _trainable("--decoder-dim", "128")
    with torch.device("meta"):
        built = build_lpsam(wide, 5)
    assert wider["phase2_decoder"] == sum(p.numel() for p in (*built.lpe.parameters(), *built.mask_decoder.parameters()))
    assert wider["phase2_decoder"] > 3 * default["phase2_decoder"] // 2
    result = CliRunner().invoke(adapt, ["--out", "unused", "--model", "vit_b", "--decoder-dim", "128"])
    assert result.exit_code == 2 and "--decoder-dim" in result.output, result.output
    assert not (tmp_path / "unused").exists()


def test_a_wider_tiny_encoder_round_trips_and_only_tiny_takes_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from maskgen.cli.adapt import adapt
    from maskgen.lpsam.config import with_encoder_dim
    from maskgen.lpsam.testing import MICRO

    tiny = get_config("tiny")
    wide = with_encoder_dim(tiny, 128)
    assert wide.embed_dim == 128 and wide == type(tiny)(**{**tiny.__dict__, "embed_dim": 128})
    for name, dim in (("vit_b", 128), ("tiny", 100), ("tiny", 60)):
        with pytest.raises(ValueError, match="encoder"):
            with_encoder_dim(get_config(name), dim)

    loaded = _saved_and_loaded(with_encoder_dim(MICRO, 48), tmp_path / "adapt")
    assert loaded.config.embed_dim == 48 and loaded.image_encoder.patch_embed.proj.out_channels == 48

    monkeypatch.chdir(tmp_path)
    default, wider = _trainable(), _trainable("--encoder-dim", "128")
    with torch.device("meta"):
        built = build_lpsam(wide, 5)
    assert wider["phase1"] == sum(p.numel() for p in built.parameters()) - sum(p.numel() for p in built.lpe.parameters())
    assert wider["phase1"] > 2 * default["phase1"]
    assert wider["phase2_decoder"] == default["phase2_decoder"]  # the decoder and LPE keep their width
    result = CliRunner().invoke(adapt, ["--out", "unused", "--model", "vit_b", "--encoder-dim", "128"])
    assert result.exit_code == 2 and "--encoder-dim" in result.output, result.output
    assert not (tmp_path / "unused").exists()
