"""On CUDA (skipped elsewhere): every head fine-tunes and predicts under bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from evaluate.backbones import random_backbone
from evaluate.profiles import Profile
from evaluate.train import Split, fit, make_head, predict
from maskgen.common.devices import resolve_device


@pytest.mark.gpu
@pytest.mark.parametrize("kind,seg_head", [("classification", "fpn"), ("segmentation", "fpn"),
                                           ("segmentation", "maskrcnn")])
def test_heads_fit_on_cuda(kind, seg_head):
    device = resolve_device("auto")
    profile = Profile(name="gpu", resolution=224, max_frames=0, cls_epochs=2, seg_epochs=2,
                      batch_size=8, seg_head=seg_head)
    torch.manual_seed(0)
    images = torch.randint(0, 60, (16, 224, 224), dtype=torch.uint8)
    masks = torch.zeros(16, 224, 224, dtype=torch.uint8)
    masks[:, 60:140, 80:160] = 1
    images[masks.bool()] = 200
    targets = torch.arange(16) % 3 if kind == "classification" else masks
    split = Split(images, targets)
    head = make_head(kind, profile, 3)
    result = fit(head, random_backbone(), split, split, 2, device, seed=0)
    assert next(result.model.parameters()).device.type == device.type
    pred = predict(head, result.model, images, device, 8)
    assert pred.shape == ((16,) if kind == "classification" else (16, 224, 224))
    assert len(result.history) == 2 and result.best_epoch in (1, 2)
