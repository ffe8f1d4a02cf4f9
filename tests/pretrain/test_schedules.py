"""Schedules are pure functions of the step with the documented end points."""

from __future__ import annotations

import pytest

from maskgen.common.schedules import warmup_cosine
from pretrain.optim import OptimConfig, param_groups
from pretrain.schedules import ema_momentum, scaled_lr


def test_learning_rate_warmup_then_cosine():
    lrs = [warmup_cosine(s, 1.0, 4, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0 and all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    assert warmup_cosine(20, 1.0, 4, 20) == pytest.approx(0.0)
    assert warmup_cosine(12, 1.0, 4, 20) == pytest.approx(0.5)  # half-way through the cosine
    assert scaled_lr(0.3, 192) == pytest.approx(0.225)


def test_ema_momentum_rises_to_one():
    assert ema_momentum(0, 0.99, 100) == pytest.approx(0.99)
    assert ema_momentum(50, 0.99, 100) == pytest.approx(0.995)
    assert ema_momentum(100, 0.99, 100) == pytest.approx(1.0)


def test_bias_and_norm_excluded():
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    decayed, plain = param_groups(model, 1e-6)
    assert [p.ndim for p in decayed["params"]] == [4] and len(plain["params"]) == 3
    assert plain["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-6
    with pytest.raises(ValueError, match="--epochs"):
        OptimConfig(epochs=0)
