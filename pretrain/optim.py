"""Optimisers and the recipes that pick their hyper-parameters.

``lars``: timm's LARS with biases and normalisation parameters excluded from weight decay and
from the trust-ratio adaptation (timm adapts only groups with weight decay): the paper's
optimiser. ``adamw``: AdamW with the same two groups.

LARS scales each weight tensor's step to ``lr x trust_coeff`` of its norm, so with the linear
scaling rule (lr = base x batch / 256) a small batch barely moves the weights: at batch 16 the
paper's recipe changes each tensor by about 2e-5 of its norm per step, and a few hundred steps
leave the backbone at its initialisation. ``RECIPES`` holds the paper's recipe and one for small
batches, chosen from the measurements in ``benchmarks/bench_recipe.py`` (pretext loss and weight
motion after a fixed number of steps; never downstream scores); ``auto`` takes the paper's recipe
from a global batch of ``PAPER_MIN_BATCH`` up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.optim import Lars
from torch import nn

OPTIMIZERS = ("lars", "adamw")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 300
    base_lr: float = 0.3          # scaled by global batch / 256
    warmup_epochs: float = 3.0
    weight_decay: float = 1e-6
    momentum: float = 0.9
    ema_base: float = 0.99
    optimizer: str = "lars"
    trust_coeff: float = 1e-3     # LARS only
    recipe: str = "paper"         # the recipe the values came from (recorded, not read)

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {self.epochs}")
        if self.base_lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.base_lr}")
        if self.warmup_epochs < 0:
            raise ValueError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        if not 0 <= self.ema_base <= 1:
            raise ValueError(f"--ema-momentum must be in [0, 1], got {self.ema_base}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.trust_coeff <= 0:
            raise ValueError(f"--trust-coefficient must be > 0, got {self.trust_coeff}")
        if self.weight_decay < 0:
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}")


PAPER_MIN_BATCH = 128
# name -> OptimConfig fields; the paper's: LARS, base lr 0.3 x batch / 256, trust 1e-3, wd 1e-6
RECIPES: dict[str, dict] = {
    "paper": {"optimizer": "lars", "base_lr": 0.3, "trust_coeff": 1e-3, "weight_decay": 1e-6},
    # AdamW at 1e-3 for batch 16 (1.6e-2 x batch / 256): in bench_recipe (40 steps, batch 16, 96 px)
    # the lowest pretext loss (22.3 vs 23.8 for LARS with trust 2e-2, 27.1 for the paper's) and
    # 15x the paper's backbone weight change
    "small-batch": {"optimizer": "adamw", "base_lr": 1.6e-2, "trust_coeff": 1e-3, "weight_decay": 1e-6},
}


def resolve_recipe(name: str, global_batch: int) -> str:
    """``auto`` -> ``paper`` from a global batch of ``PAPER_MIN_BATCH`` up, else ``small-batch``."""
    if name == "auto":
        return "paper" if global_batch >= PAPER_MIN_BATCH else "small-batch"
    if name not in RECIPES:
        raise ValueError(f"--recipe {name!r}: choose auto or one of {', '.join(RECIPES)}")
    return name


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (decayed, adapted) and biases/norm parameters (ndim <= 1: neither)."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (plain if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """The optimiser of ``cfg.optimizer`` over ``param_groups`` (lr is set per step anyway)."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return Lars(groups, lr=lr, momentum=cfg.momentum, trust_coeff=cfg.trust_coeff)
