"""Augmentation keeps frames and masks in register; corruption and mask sampling behave."""

from __future__ import annotations

import torch

from pretrain.corruption import (
    CorruptionConfig,
    corrupt,
    inpaint_blocks,
    intensity_remap,
    pixel_shuffle,
)
from pretrain.masks import (
    dominant_ids,
    grid_masks,
    id_areas,
    mask_pool,
    pooling_matrix,
    sample_ids,
    superpixel_masks,
)
from pretrain.views import ViewConfig, make_views


def _frames(n=6, s=64, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, k, s, s, dtype=torch.bool)
    for i in range(n):
        for j in range(k):
            y0, x0 = torch.randint(0, s - 16, (2,), generator=g).tolist()
            masks[i, j, y0:y0 + 16, x0:x0 + 24] = True
    frames = (masks.float() * torch.tensor([80.0, 160.0, 240.0])[None, :k, None, None]).amax(1).to(torch.uint8)
    return frames, masks


def test_geometry_in_register():
    """With photometric changes off, a frame drawn as 255 * mask warps exactly like its mask,
    and the common region does too."""
    frames, masks = _frames(k=1)
    frames = masks[:, 0].to(torch.uint8) * 255
    plain = ViewConfig(jitter_p=0.0, blur_p=0.0, solarize_p=0.0)
    pair = make_views(frames, masks, 32, torch.Generator().manual_seed(1), (plain, plain))
    assert pair.views.shape == (2, 6, 1, 32, 32) and pair.view_masks.shape == (2, 6, 1, 32, 32)
    torch.testing.assert_close(pair.views, pair.view_masks, atol=1e-5, rtol=0)
    torch.testing.assert_close(pair.region, pair.region_masks, atol=1e-5, rtol=0)
    assert pair.flips.any() and not pair.flips.all()  # both branches exercised


def test_flip_and_full_crop_are_exact():
    frames, masks = _frames(n=2, s=32, k=1)
    cfg = ViewConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0, blur_p=0)
    pair = make_views(frames, masks, 32, torch.Generator().manual_seed(0), (cfg, cfg))
    torch.testing.assert_close(pair.views[0, :, 0], frames.float().flip(-1) / 255, atol=1e-5, rtol=0)
    torch.testing.assert_close(pair.region[:, 0], frames.float() / 255, atol=1e-5, rtol=0)
    assert pair.region_valid.all()


def test_corruption_parameters():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 32, 32, generator=g)
    assert torch.equal(pixel_shuffle(x, 0.0, 4, g), x)
    shuffled = pixel_shuffle(x, 1.0, 4, g)
    assert not torch.equal(shuffled, x)
    tiles = lambda t: t.unfold(2, 4, 4).unfold(3, 4, 4).reshape(4, 8, 8, 16).sort(-1).values  # noqa: E731
    torch.testing.assert_close(tiles(shuffled), tiles(x))   # same pixels in every window
    ramp = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(3, 1, 1, 101)
    remapped = intensity_remap(ramp, 0.2, g)
    assert (remapped.diff(dim=-1) > 0).all()                 # monotone
    assert (remapped[..., 50] - 0.5).abs().max() <= 0.2 + 1e-6  # mid-grey moves by at most b
    assert torch.equal(remapped[..., [0, 100]], ramp[..., [0, 100]])
    area = (inpaint_blocks(torch.full((200, 1, 32, 32), -1.0), 0.05, 4, g) >= 0).float().mean()
    assert 0.03 < float(area) < 0.07                         # expected area fraction g
    y = corrupt(x, CorruptionConfig(), g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_dominant_sampling_pooling():
    masks = torch.zeros(1, 3, 8, 8)
    masks[0, 0, :4] = 1          # top half
    masks[0, 1, 4:, :2] = 1      # a quarter of the bottom half
    masks[0, 2, 4:, 2:3] = 1     # too thin to dominate any cell (ties go to "no anatomy")
    ids = dominant_ids(masks, 2)
    assert ids.tolist() == [[0, 0, 1, -1]]
    ids4 = dominant_ids(masks, 4)
    assert id_areas(ids4, 3).tolist() == [[8.0, 2.0, 0.0]]
    drawn, w = sample_ids(id_areas(ids4, 3), 2000, torch.Generator().manual_seed(0))
    share = (drawn == 0).float().mean()
    assert 0.75 < float(share) < 0.85 and not (drawn == 2).any()  # coverage-weighted: 8 / 10
    assert torch.allclose((w * (drawn == 0)).sum(), torch.tensor(1.0))
    feats = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = mask_pool(feats, pooling_matrix(ids4, torch.tensor([[0, 1, 2]])))
    assert pooled[0, :, 0].tolist() == [3.5, 10.0, 0.0]  # cells 0-7; cells 8, 12


def test_anatomy_blind_sources():
    g = grid_masks(2, 16, 32, "cpu")
    assert g.shape == (2, 16, 32, 32) and (g.sum(1) == 1).all() and (g.sum((2, 3)) == 64).all()
    frames, _ = _frames(n=2, s=32)
    sp = superpixel_masks(frames, 8)
    assert sp.shape == (2, 8, 32, 32) and (sp.sum(1) == 1).all()
