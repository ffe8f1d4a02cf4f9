"""The learning-rate schedule of every stage: linear warm-up, then a cosine to a floor.

One function, a pure function of the step (``pretrain run``, LP-SAM's two phases and the
benchmark's segmentation fine-tuning all call it, each with its own arguments).
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, base: float, warmup_steps: int, total_steps: int, floor: float = 0.0) -> float:
    """The learning rate of optimisation step ``step`` (0-based; the value used for its update).

    Linear warm-up ``base * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps
    (none when 0), then a half cosine from ``base`` to ``floor * base`` at ``total_steps``,
    held there after.

    Args:
        base: the peak rate (> 0). warmup_steps: >= 0. total_steps: the step the cosine ends at.
        floor: the final rate as a fraction of ``base`` in [0, 1] (0: decay to zero).
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be a fraction of the base rate in [0, 1], got {floor}")
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
