"""A run from an official SAM checkpoint saves only the trained modules + the base's sha256."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from segment_anything.build_sam import _build_sam

from maskgen.common.files import sha256_file
from maskgen.lpsam.adapt import adapt
from maskgen.lpsam.artifacts import load_adapt_dir
from maskgen.lpsam.checkpoint import convert_sam_state_dict, read_sam_checkpoint
from maskgen.lpsam.config import LPSAMConfig
from maskgen.lpsam.testing import synthetic_pairs
from maskgen.lpsam.train import PhaseSettings


@pytest.fixture
def small_sam(tmp_path):
    torch.manual_seed(0)
    official = _build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1])
    path = tmp_path / "sam_small.pth"
    torch.save(official.state_dict(), path)
    config = LPSAMConfig("small", embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), decoder_mlp_dim=2048,
                         conv_channels=16, lpe_cnn_channels=(8, 16, 16), lpe_mlp_dim=64, sam_variant="small")
    return path, config


def test_adapt_from_sam_checkpoint_round_trip(tmp_path, small_sam):
    path, config = small_sam
    pairs = synthetic_pairs(4, size=256)
    out = tmp_path / "adapt"
    settings = PhaseSettings(1, 1e-4, batch_size=2)
    report = adapt(out, pairs, config, settings, settings, torch.device("cpu"), sam_checkpoint=path)
    assert report["trained_base"] is False
    # the adapter, and SAM's IoU head, whose loss is used
    assert report["phases"]["phase1"]["trainable_params"] == report["params"]["phase1_adapter"] + report["params"]["iou_head"]
    meta = json.loads((out / "lpsam.json").read_text())
    assert meta["weights"] == "trained-modules"
    assert meta["base_checkpoint"]["sha256"] == sha256_file(path)
    saved = load_file(out / "lpsam.safetensors")
    assert saved and all(k.startswith(("adapter.", "lpe.", "mask_decoder.")) for k in saved)
    assert any(k.startswith("mask_decoder.iou_prediction_head.") for k in saved)  # the trained head is kept
    model, _ = load_adapt_dir(out)
    official = convert_sam_state_dict(read_sam_checkpoint(path), config)
    own = model.state_dict()
    for key, value in saved.items():  # trained modules from the adaptation
        assert torch.equal(own[key], value), key
    for key, value in official.items():  # everything else from the SAM base, resampled
        if key not in saved:
            assert torch.equal(own[key], value), key
    assert set(saved) | set(official) == set(own)
    decoder_only = {k: v for k, v in saved.items() if not k.startswith("mask_decoder.")}
    from safetensors.torch import save_file

    save_file(decoder_only, out / "lpsam.safetensors")  # a folder written before the decoder trained
    earlier, _ = load_adapt_dir(out)
    assert torch.equal(earlier.state_dict()["mask_decoder.iou_token.weight"], official["mask_decoder.iou_token.weight"])


def test_changed_base_checkpoint_is_refused(tmp_path, small_sam):
    path, config = small_sam
    pairs = synthetic_pairs(4, size=256)
    out = tmp_path / "adapt"
    settings = PhaseSettings(1, 1e-4, batch_size=2)
    adapt(out, pairs, config, settings, settings, torch.device("cpu"), sam_checkpoint=path)
    state = torch.load(path, weights_only=True)
    state["mask_decoder.iou_token.weight"] += 1
    torch.save(state, path)
    with pytest.raises(ValueError, match="sha256"):
        load_adapt_dir(out)
