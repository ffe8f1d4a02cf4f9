"""The light segmentation head's forward pass: the 1x1 reduction moved through the FPN."""

from __future__ import annotations

import torch
from torchvision.models import resnet18

from evaluate.models import FPNSegmenter


def _pair(seed: int = 0, fpn_channels: int = 32, head_channels: int = 16) -> tuple[FPNSegmenter, torch.Tensor]:
    torch.manual_seed(seed)
    model = FPNSegmenter(resnet18(), fpn_channels=fpn_channels, head_channels=head_channels)
    for p in model.parameters():  # non-trivial biases (torchvision's FPN starts them at 0)
        if p.ndim == 1:
            p.data.normal_(0, 0.5)
    images = torch.randint(0, 256, (2, 64, 64), dtype=torch.uint8)
    return model, images


def _full_map(model: FPNSegmenter, images: torch.Tensor) -> torch.Tensor:
    """The definition: every 256-channel level formed, upsampled, summed, then reduced."""
    return model.decode(model.features(images), tuple(images.shape[-2:]))


def test_reduced_forward_equals_the_full_maps_in_value_and_gradient():
    model, images = _pair()
    model.train()
    fast = model(images)
    grads_fast = torch.autograd.grad(fast.square().sum(), list(model.parameters()), allow_unused=True)
    slow = _full_map(model, images)
    grads_slow = torch.autograd.grad(slow.square().sum(), list(model.parameters()), allow_unused=True)
    assert fast.shape == (2, 64, 64)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)  # fp32: rounding only
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(grads_fast) == len(grads_slow)
    for i, name in enumerate(names):
        a, b = grads_fast[i], grads_slow[i]
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_folded_reduction_equals_the_reduction_of_the_fused_levels():
    """Before the GroupNorm (which would hide a wrong constant): every level and both biases."""
    model, images = _pair(1)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model._reduced_levels(images), model.reduce[0](model.features(images)),
                                   rtol=1e-4, atol=1e-5)


def test_blocks_that_are_not_plain_convolutions_take_the_full_path():
    model, images = _pair(2)
    model.body.fpn.layer_blocks[0].append(torch.nn.ReLU())  # no longer linear: cannot be folded
    model.eval()
    assert model._reduced_levels(images) is None
    with torch.no_grad():
        torch.testing.assert_close(model(images), _full_map(model, images))
