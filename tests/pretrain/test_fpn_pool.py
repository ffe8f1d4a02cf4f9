"""Pooling before the FPN's output convolutions gives the losses and gradients of the full maps."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from maskgen.store.testing import synthetic_frames
from pretrain.fpn_pool import _plain_3x3, conv3x3_pooled, pooled_pyramid
from pretrain.masks import mask_pool
from pretrain.model import (
    ModelConfig,
    OnlineNetwork,
    TargetNetwork,
    build_online,
    build_target,
    through_valid_rows,
    valid_rows,
)
from pretrain.step import ObjectiveConfig, compute_loss, prepare_inputs


class FullMapsOnline(OnlineNetwork):
    """The step before ``fpn_pool``: every FPN map in full, then ``mask_pool``."""

    def forward(self, x, matrices):
        return [through_valid_rows(self.predictor, z.flatten(0, 1), valid_rows(mat)).view_as(z)
                for z, mat in zip(self.embed(self.encoder(x), matrices), matrices, strict=True)]


class FullMapsTarget(TargetNetwork):
    def forward(self, x, matrices):
        return self.embed(self.encoder(x), matrices)


def _full_maps_copy(online, target):
    on, tg = copy.deepcopy(online), copy.deepcopy(target)
    on.__class__, tg.__class__ = FullMapsOnline, FullMapsTarget
    return on, tg


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_conv3x3_pooled_equals_pooling_the_full_map(bias, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1, bias=bias)
    x = torch.randn(2, 6, 7, 5).contiguous(memory_format=layout).requires_grad_(True)
    # pooling rows: an averaging row over random cells, a border-only row, an empty (invalid) row
    hit = torch.rand(2, 3, 35) < 0.4
    hit[:, 1] = False
    hit[:, 1, [0, 4, 30, 34]] = True
    hit[:, 2] = False
    mat = hit.float() / hit.float().sum(-1, keepdim=True).clamp(min=1)
    want = mask_pool(conv(x), mat)
    got = conv3x3_pooled(x, mat, conv)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(want)
    grads_want = torch.autograd.grad((want * g).sum(), [x, conv.weight])
    grads_got = torch.autograd.grad((got * g).sum(), [x, conv.weight])
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_only_plain_3x3_convolutions_take_the_pooled_path():
    assert _plain_3x3(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))) is not None
    assert _plain_3x3(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))) is None
    assert _plain_3x3(nn.Conv2d(4, 4, 3, padding=1, stride=2)) is None
    assert _plain_3x3(nn.Conv2d(4, 4, 1)) is None


@pytest.mark.parametrize("scales,layout", [(4, torch.contiguous_format), (4, torch.channels_last),
                                           (2, torch.contiguous_format), (1, torch.contiguous_format)])
def test_pooled_pyramid_equals_encoder_then_mask_pool(scales, layout):
    online = build_online(ModelConfig(scales=scales), seed=0).to(memory_format=layout)
    with torch.no_grad():  # torchvision zero-initialises the FPN biases: make them count
        for m in online.encoder.fpn.modules():
            if isinstance(m, nn.Conv2d):
                m.bias.normal_()
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=layout)
    sizes = [64 // s for s in (32, 16, 8, 4)][:scales]
    gen = torch.Generator().manual_seed(1)
    mats = []
    for h in sizes:
        hit = torch.rand(2, 4, h * h, generator=gen) < 0.3
        mats.append(hit.float() / hit.float().sum(-1, keepdim=True).clamp(min=1))
    with torch.no_grad():
        want = [mask_pool(f, m) for f, m in zip(online.encoder(x), mats, strict=True)]
        got = pooled_pyramid(online.encoder, x, mats)
    assert len(got) == scales
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _both_steps(dtype):
    cfg = ObjectiveConfig(resolution=64)
    images, masks, _ = synthetic_frames(4, 64, 4, seed=3)
    masks[1] = False  # a frame without anatomy: invalid draws at every scale
    inputs = prepare_inputs(torch.from_numpy(images), torch.from_numpy(masks), cfg, torch.Generator().manual_seed(0))
    inputs.images, inputs.target_images = inputs.images.to(dtype), inputs.target_images.to(dtype)
    inputs.matrices = [m.to(dtype) for m in inputs.matrices]
    online = build_online(ModelConfig(), seed=0).to(dtype)
    target = build_target(online)
    ref_online, ref_target = _full_maps_copy(online, target)
    loss, parts = compute_loss(online, target, inputs, cfg)
    ref_loss, ref_parts = compute_loss(ref_online, ref_target, inputs, cfg)
    return (online, loss, parts), (ref_online, ref_loss, ref_parts)


def test_step_losses_match_the_full_maps_step():
    """The whole objective (alignment + prediction, 4 scales, invalid draws included) in float32
    on the same seed and inputs: the same loss and loss parts."""
    (_, loss, parts), (_, ref_loss, ref_parts) = _both_steps(torch.float32)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    assert parts.keys() == ref_parts.keys()
    for key in parts:
        torch.testing.assert_close(parts[key], ref_parts[key], rtol=1e-5, atol=1e-5)


def test_step_gradients_match_the_full_maps_step():
    """Same step in float64 (float32 rounding is amplified by ~20 BatchNorm backward passes,
    for either path alike): the gradient of every online parameter and the BatchNorm running
    statistics agree to float64 rounding, i.e. the two computations are the same function."""
    (online, loss, _), (ref_online, ref_loss, _) = _both_steps(torch.float64)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    loss.backward()
    ref_loss.backward()
    ref = dict(ref_online.named_parameters())
    checked = 0
    for name, p in online.named_parameters():
        if p.grad is None:
            assert ref[name].grad is None or not ref[name].grad.any(), name
            continue
        torch.testing.assert_close(p.grad, ref[name].grad, rtol=1e-7, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")
        checked += 1
    assert checked > 50
    for (name, a), (_, b) in zip(online.named_buffers(), ref_online.named_buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
