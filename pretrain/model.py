"""Online and target networks: timm ResNet (features_only) + FPN, projector, predictor.

The backbone and FPN run once per call; every scale is pooled from that single pass.
Feature maps are ordered coarsest first (7, 14, 28, 56 at 224 input) and ``scales`` = S keeps
the S coarsest.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import timm
import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from pretrain.archs import ARCHS, DEFAULT_ARCH
from pretrain.fpn_pool import pooled_pyramid
from pretrain.masks import mask_pool

STRIDES = (32, 16, 8, 4)  # coarsest first


@dataclass(frozen=True)
class ModelConfig:
    arch: str = DEFAULT_ARCH
    fpn_dim: int = 256
    proj_hidden: int = 1024
    proj_dim: int = 256
    pred_hidden: int = 4096
    scales: int = 4

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"--arch {self.arch!r} is not supported; choose one of {', '.join(ARCHS)}")
        if not 1 <= self.scales <= 4:
            raise ValueError(f"--scales must be 1..4 (7/14/28/56 maps at 224), got {self.scales}")


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear on (N, dim_in) vectors."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim_out))


class Encoder(nn.Module):
    """ResNet body (timm key names) + FPN: x (n, 3, R, R) -> S maps (n, fpn_dim, R/s, R/s),
    coarsest first (s = 32, 16, 8, 4)."""

    def __init__(self, arch: str, fpn_dim: int, scales: int):
        super().__init__()
        self.body = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        self.fpn = FeaturePyramidNetwork(self.body.feature_info.channels(), fpn_dim)
        self.scales = scales

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        maps = self.fpn({str(i): f for i, f in enumerate(feats)})
        return list(maps.values())[::-1][: self.scales]


def valid_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Which draws found anatomy: pooling matrix (n, D, h*w) -> (n*D,) bool; a draw with no
    cell (id -1, or an id absent at this scale) has an all-zero row."""
    return (matrix.sum(-1) > 0).flatten()


def through_valid_rows(module: nn.Module, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``module`` on the valid rows of x (N, C) only, zeros elsewhere -> (N, C_out).

    Rows with no anatomy carry no loss weight, but inside a batch they would still shift the
    BatchNorm statistics (and the running estimates) of every valid row; here they never
    reach the module. With every row valid this is ``module(x)`` itself.
    """
    if bool(valid.all()):
        return module(x)
    y = module(x[valid])
    return y.new_zeros((x.shape[0], y.shape[1])).masked_scatter(valid[:, None], y)


class TargetNetwork(nn.Module):
    """Encoder + projector: x (n, 3, R, R), per-scale pooling matrices (n, D, h*w)
    -> per-scale projections (n, D, proj_dim); draws with no anatomy project to zeros."""

    def __init__(self, encoder: Encoder, projector: nn.Module):
        super().__init__()
        self.encoder, self.projector = encoder, projector

    def embed(self, maps: list[torch.Tensor], matrices: list[torch.Tensor]) -> list[torch.Tensor]:
        """Full feature maps (n, C, h, w) -> mask-pooled projections (the reference path)."""
        return self.project([mask_pool(fmap, mat) for fmap, mat in zip(maps, matrices, strict=True)], matrices)

    def project(self, pooled: list[torch.Tensor], matrices: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mask-pooled features (n, D, C) per scale -> projections (n, D, proj_dim)."""
        out = []
        for feat, mat in zip(pooled, matrices, strict=True):
            n, d, c = feat.shape
            out.append(through_valid_rows(self.projector, feat.reshape(n * d, c), valid_rows(mat)).view(n, d, -1))
        return out

    def forward(self, x: torch.Tensor, matrices: list[torch.Tensor]) -> list[torch.Tensor]:
        # == self.embed(self.encoder(x), matrices), without the FPN's full-resolution output convs
        return self.project(pooled_pyramid(self.encoder, x, matrices), matrices)


class OnlineNetwork(TargetNetwork):
    """Encoder + projector + predictor (same signature as the target, predictions out; zeros
    for draws with no anatomy, which reach neither MLP)."""

    def __init__(self, encoder: Encoder, projector: nn.Module, predictor: nn.Module):
        super().__init__(encoder, projector)
        self.predictor = predictor

    def forward(self, x: torch.Tensor, matrices: list[torch.Tensor]) -> list[torch.Tensor]:
        return [through_valid_rows(self.predictor, z.flatten(0, 1), valid_rows(mat)).view_as(z)
                for z, mat in zip(super().forward(x, matrices), matrices, strict=True)]


def build_online(cfg: ModelConfig, seed: int | None = None) -> OnlineNetwork:
    """The online network at step 0. With ``seed`` the global torch RNG is seeded first, so
    the initial weights are a function of (cfg, seed): ``pretrain run --seed S`` starts from
    ``build_online(cfg, S)``, and the ``random`` reference of ``evaluate`` is that same network's
    backbone + FPN (timm's initialisation, incl. the zero-initialised last BatchNorm of every
    residual block)."""
    if seed is not None:
        torch.manual_seed(seed)
    return OnlineNetwork(Encoder(cfg.arch, cfg.fpn_dim, cfg.scales),
                         mlp(cfg.fpn_dim, cfg.proj_hidden, cfg.proj_dim),
                         mlp(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim))


def with_synced_batchnorm(online: OnlineNetwork) -> OnlineNetwork:
    """Every BatchNorm (backbone, projector and predictor) computes its batch statistics
    over all ranks, as BYOL does on many GPUs. State-dict keys are unchanged, so checkpoints,
    the EMA and exports are too. Call before ``build_target``; needs a GPU process group."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(online)


def build_target(online: OnlineNetwork) -> TargetNetwork:
    """The target starts as a copy of the online encoder + projector; it is never trained."""
    target = TargetNetwork(copy.deepcopy(online.encoder), copy.deepcopy(online.projector))
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: TargetNetwork, online: OnlineNetwork, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online (parameters); buffers copied."""
    t_params = [p for p in target.parameters()]
    o_params = [p for n, p in online.named_parameters() if not n.startswith("predictor.")]
    torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)
    o_bufs = dict(online.named_buffers())
    for name, buf in target.named_buffers():
        buf.copy_(o_bufs[name])
