"""Learning rate and EMA momentum: pure functions of the optimisation step."""

from __future__ import annotations

import math


def learning_rate(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to 0.

    ``step`` counts from 0; the value returned is the one used for that step's update.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_momentum(step: int, base_momentum: float, total_steps: int) -> float:
    """BYOL's target momentum: ``base_momentum`` at step 0 rising to 1 on a cosine."""
    progress = min(step / max(total_steps, 1), 1.0)
    return 1.0 - (1.0 - base_momentum) * 0.5 * (math.cos(math.pi * progress) + 1.0)


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule: ``base_lr x global_batch / 256``."""
    return base_lr * global_batch / 256
