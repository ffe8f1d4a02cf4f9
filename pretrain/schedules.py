"""EMA momentum and the batch scaling of the learning rate: pure functions of the step.

The learning rate itself is ``maskgen.common.schedules.warmup_cosine`` (one schedule for every stage).
"""

from __future__ import annotations

import math


def ema_momentum(step: int, base_momentum: float, total_steps: int) -> float:
    """BYOL's target momentum: ``base_momentum`` at step 0 rising to 1 on a cosine."""
    progress = min(step / max(total_steps, 1), 1.0)
    return 1.0 - (1.0 - base_momentum) * 0.5 * (math.cos(math.pi * progress) + 1.0)


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule: ``base_lr x global_batch / 256``."""
    return base_lr * global_batch / 256
