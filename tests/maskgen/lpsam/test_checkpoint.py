"""Official SAM checkpoints into LP-SAM: keys, shapes and resampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from segment_anything import build_sam_vit_b
from segment_anything.build_sam import _build_sam
from segment_anything.modeling.image_encoder import get_rel_pos

from maskgen.lpsam.checkpoint import (
    CheckpointKeyError,
    check_base_keys,
    convert_sam_state_dict,
    is_new_key,
    load_base_weights,
    load_sam_checkpoint,
)
from maskgen.lpsam.config import LPSAMConfig, get_config
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.resample import adjoint_resize_kernel, resize_pos_embed, resize_rel_pos


def test_official_vit_b_keys_load_into_lpsam_on_meta():
    with torch.device("meta"):
        official = build_sam_vit_b()
        model = build_lpsam(get_config("vit_b"), num_classes=5)
    converted = convert_sam_state_dict(official.state_dict(), model.config)
    own = model.state_dict()
    assert set(converted) == set(official.state_dict())  # every official key consumed
    missing = set(own) - set(converted)
    unexpected = set(converted) - set(own)
    assert unexpected == set()
    assert missing and all(is_new_key(k) for k in missing)  # only adapters, conv branch, LPE
    assert {k.split(".")[0] for k in missing} == {"adapter", "lpe"}
    assert any(".conv_branch." in k for k in missing) and any("latent_tokens" in k for k in missing)
    for key, value in converted.items():
        assert tuple(value.shape) == tuple(own[key].shape), key
    assert converted["image_encoder.patch_embed.proj.weight"].shape == (768, 3, 8, 8)
    assert converted["image_encoder.pos_embed"].shape == (1, 32, 32, 768)
    assert converted["image_encoder.blocks.2.attn.rel_pos_h"].shape == (63, 64)  # global block
    assert converted["image_encoder.blocks.0.attn.rel_pos_h"].shape == (27, 64)  # 14x14 window
    load_base_weights(model, converted)  # strict load, keys checked


def test_unexpected_or_missing_keys_are_named():
    with torch.device("meta"):
        official = build_sam_vit_b()
        model = build_lpsam(get_config("vit_b"), num_classes=2)
    converted = convert_sam_state_dict(official.state_dict(), model.config)
    converted["image_encoder.extra.weight"] = torch.zeros(1)
    del converted["mask_decoder.iou_token.weight"]
    with pytest.raises(CheckpointKeyError) as err:
        check_base_keys(model, converted)
    assert err.value.unexpected == ["image_encoder.extra.weight"]
    assert err.value.missing == ["mask_decoder.iou_token.weight"]


def test_wrong_variant_is_rejected():
    with torch.device("meta"):
        official = build_sam_vit_b()
    with pytest.raises(ValueError, match="vit_b/vit_l/vit_h"):
        convert_sam_state_dict(official.state_dict(), get_config("vit_l"))


def test_adjoint_kernel_equals_old_kernel_on_upsampled_patch():
    torch.manual_seed(0)
    old = torch.randn(5, 3, 16, 16, dtype=torch.float64)
    new = adjoint_resize_kernel(old, 8)
    patch = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    up = F.interpolate(patch, size=(16, 16), mode="bilinear", align_corners=False)
    ref = torch.einsum("bchw,ochw->bo", up, old)
    fast = torch.einsum("bchw,ochw->bo", patch, new)
    torch.testing.assert_close(fast, ref)


def test_adjoint_keeps_flat_patches_and_is_not_flexivit_pi_resize():
    """What resample.py's docstring says: a flat patch keeps its response; PI-resize (w' =
    pinv(B'^T) w, B' the 16 -> 8 downsampling) is another kernel."""
    from maskgen.lpsam.resample import resize_operator

    torch.manual_seed(0)
    old = torch.randn(5, 1, 16, 16, dtype=torch.float64)
    new = adjoint_resize_kernel(old, 8)
    torch.testing.assert_close(new.sum((-1, -2)), old.sum((-1, -2)))  # <c 1, B^T w> = <c 1, w>
    down = resize_operator(16, 8)                                      # (64, 256)
    pi = (torch.linalg.pinv(down.T) @ old.reshape(5, 256).T).T.reshape(5, 1, 8, 8)
    assert (pi - new).abs().max() > 0.1 * new.abs().max()


def test_pos_and_rel_pos_resampling():
    pos = torch.arange(64.0).view(1, 8, 8, 1).expand(1, 8, 8, 3)
    small = resize_pos_embed(pos, 4)
    assert small.shape == (1, 4, 4, 3)
    assert small[0, 0, 0, 0] < small[0, 0, 3, 0] < small[0, 3, 3, 0]  # order of positions kept
    table = torch.randn(127, 16)
    # precomputing the table == what segment_anything would interpolate at run time
    torch.testing.assert_close(get_rel_pos(32, 32, resize_rel_pos(table, 63)), get_rel_pos(32, 32, table))


def _small_official_and_config():
    """A small SAM built by segment_anything's own builder (1024 input, 16px patches)."""
    torch.manual_seed(0)
    official = _build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
                          encoder_global_attn_indexes=[1])
    for p in official.image_encoder.parameters():  # rel-pos tables start at zero: make them count
        p.data.normal_(0, 0.02)
    config = LPSAMConfig("small", embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,),
                         conv_channels=16, lpe_cnn_channels=(8, 16, 16), lpe_mlp_dim=64, sam_variant="small")
    return official, config


def test_checkpoint_file_round_trip(tmp_path):
    official, config = _small_official_and_config()
    path = tmp_path / "sam_small.pth"
    torch.save(official.state_dict(), path)
    model = build_lpsam(config, num_classes=2)
    load_sam_checkpoint(model, path)
    own = model.state_dict()
    torch.testing.assert_close(own["mask_decoder.iou_token.weight"], official.mask_decoder.iou_token.weight)
    torch.testing.assert_close(own["image_encoder.blocks.0.mlp.lin1.weight"],
                               official.image_encoder.blocks[0].mlp.lin1.weight)
    # zero-initialised adapters and conv projections: the adapted encoder is the plain ViT
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model.encode(x), model.image_encoder(x))
