"""What ``pretrain run`` watches besides the loss: how far the backbone has moved.

``BackboneDrift`` keeps the step-0 backbone weights (rebuilt from the seed on resume, so a
resumed run reports the same numbers as an uninterrupted one) and reports
``||w_t - w_0|| / ||w_0||`` over all backbone weight tensors, plus the mean |gamma| of the last
BatchNorm of the residual blocks (zero at initialisation with timm's ``zero_init_last``: while it
stays near 0 the residual branches contribute nothing).
"""

from __future__ import annotations

import torch
from torch import nn


def _body_weights(body: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in body.named_parameters()}


def last_bn_gammas(body: nn.Module) -> list[torch.Tensor]:
    """The weight of each residual block's last BatchNorm (bn2 of basic, bn3 of bottleneck blocks)."""
    out = []
    for name, module in body.named_modules():
        if hasattr(module, "conv1") and hasattr(module, "bn2") and name.count(".") == 1:
            out.append((module.bn3 if hasattr(module, "bn3") else module.bn2).weight.detach())
    return out


class BackboneDrift:
    """``drift(body) -> {"backbone/rel_change": r, "backbone/last_bn_gamma": g}``."""

    def __init__(self, initial_body: nn.Module):
        self.initial = {n: p.clone() for n, p in _body_weights(initial_body).items()}
        self.norm0 = torch.sqrt(sum((p.float() ** 2).sum() for p in self.initial.values()))

    @torch.no_grad()
    def __call__(self, body: nn.Module) -> dict[str, float]:
        now = _body_weights(body)
        diff = torch.sqrt(sum(((now[n].float() - p.float().to(now[n].device)) ** 2).sum().cpu()
                              for n, p in self.initial.items()))
        gammas = last_bn_gammas(body)
        gamma = float(torch.cat([g.float().abs().flatten() for g in gammas]).mean()) if gammas else float("nan")
        return {"backbone/rel_change": float(diff / self.norm0), "backbone/last_bn_gamma": gamma}
