"""LARS (timm's) with biases and normalisation parameters excluded from weight decay and
from the trust-ratio adaptation (timm adapts only groups with weight decay)."""

from __future__ import annotations

from dataclasses import dataclass

from timm.optim import Lars
from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 300
    base_lr: float = 0.3          # scaled by global batch / 256
    warmup_epochs: float = 3.0
    weight_decay: float = 1e-6
    momentum: float = 0.9
    ema_base: float = 0.99

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {self.epochs}")
        if self.base_lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.base_lr}")
        if self.warmup_epochs < 0:
            raise ValueError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        if not 0 <= self.ema_base <= 1:
            raise ValueError(f"--ema-momentum must be in [0, 1], got {self.ema_base}")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (decayed, adapted) and biases/norm parameters (ndim <= 1: neither)."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (plain if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def build_lars(model: nn.Module, cfg: OptimConfig, lr: float) -> Lars:
    return Lars(param_groups(model, cfg.weight_decay), lr=lr, momentum=cfg.momentum)
