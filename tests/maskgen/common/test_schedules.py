"""The one warm-up + cosine schedule reproduces the three schedules it replaced.

The references below are the formulas as ``pretrain``, LP-SAM and ``evaluate`` wrote them
before they shared ``warmup_cosine``, with each caller's arguments.
"""

from __future__ import annotations

import math

import pytest

from maskgen.common.schedules import warmup_cosine
from maskgen.lpsam.train import LR_FLOOR


def old_pretrain(step, base_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def old_lpsam(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def old_evaluate(step, total, seg_lr):
    warmup = max(1, total // 20)
    if step < warmup:
        return seg_lr * (step + 1) / warmup
    return seg_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


CASES = [(0.3 * 16 / 256, 0, 40), (0.3, 3, 24), (1.0, 4, 20), (0.05, 7, 7), (2e-4, 20, 300), (0.01, 1, 1)]


@pytest.mark.parametrize("base, warmup, total", CASES)
def test_pretrain_curve_is_reproduced_exactly(base, warmup, total):
    for step in range(total + 3):
        assert warmup_cosine(step, base, warmup, total) == old_pretrain(step, base, warmup, total)


@pytest.mark.parametrize("base, warmup, total", CASES)
def test_lpsam_curve_is_reproduced_exactly(base, warmup, total):
    assert LR_FLOOR == 0.01
    for step in range(total + 3):
        assert warmup_cosine(step, base, warmup, total, LR_FLOOR) == old_lpsam(step, total, base, warmup)


@pytest.mark.parametrize("total", [1, 18, 57, 400])
def test_evaluate_curve_is_reproduced(total):
    """Bit for bit in the warm-up; in the cosine the old code computed the angle as
    ``(pi * a) / b``, the shared function as ``pi * (a / b)``: a few units in the last place of
    a double apart (relative 1e-15), far below what the float32 optimiser resolves (1e-7)."""
    from evaluate.profiles import PROFILES
    from evaluate.train import SegmentationHead

    head = SegmentationHead(PROFILES["quick"])
    for step in range(total):
        old = old_evaluate(step, total, head.profile.seg_lr)
        assert warmup_cosine(step, head.profile.seg_lr, max(1, total // 20), total) == head.lr(step, total)
        assert head.lr(step, total) == pytest.approx(old, rel=1e-13, abs=1e-18)
        if step < max(1, total // 20):
            assert head.lr(step, total) == old


def test_end_points_and_floor():
    assert warmup_cosine(0, 1.0, 4, 20) == 0.25 and warmup_cosine(3, 1.0, 4, 20) == 1.0
    assert warmup_cosine(20, 2.0, 4, 20, floor=0.01) == pytest.approx(0.02)
    assert warmup_cosine(99, 2.0, 4, 20, floor=0.01) == pytest.approx(0.02)  # held after the end
    with pytest.raises(ValueError, match="floor"):
        warmup_cosine(0, 1.0, 0, 10, floor=1.5)
