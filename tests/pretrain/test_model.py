"""Online/target networks: EMA semantics and the multi-GPU BatchNorm conversion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pretrain.model import (
    ModelConfig,
    build_online,
    build_target,
    ema_update,
    with_synced_batchnorm,
)

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = ModelConfig(fpn_dim=16, proj_hidden=32, proj_dim=8, pred_hidden=32, scales=2)


def _inputs(n=4, r=64, d=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, r, r, generator=g)
    mats = [torch.rand(n, d, (r // s) ** 2, generator=g) for s in (32, 16)]
    return x, [m / m.sum(-1, keepdim=True) for m in mats]


def test_ema_moves_target_toward_online_and_copies_buffers():
    torch.manual_seed(0)
    online = build_online(CFG)
    target = build_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online(*_inputs())  # train-mode forward updates the BN running statistics
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update(target, online, momentum=0.75)
    o = online.state_dict()
    for name, p in target.named_parameters():
        torch.testing.assert_close(p, 0.75 * before[name] + 0.25 * o[name])
    for name, b in target.named_buffers():
        assert torch.equal(b, o[name]), name


def test_synced_batchnorm_keeps_keys_and_single_process_outputs():
    """Converted for multi-GPU runs, the network keeps its state-dict layout (checkpoints and
    exports unchanged) and, with no process group, computes exactly what the plain one does."""
    torch.manual_seed(0)
    plain = build_online(CFG)
    reference = {k: v.clone() for k, v in plain.state_dict().items()}
    synced = with_synced_batchnorm(build_online(CFG))
    synced.load_state_dict(reference, strict=True)
    plain.load_state_dict(reference, strict=True)
    kinds = [type(m) for m in synced.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert kinds and set(kinds) == {nn.SyncBatchNorm}
    assert set(synced.state_dict()) == set(reference)
    x, mats = _inputs()
    for a, b in zip(plain(x, mats), synced(x, mats), strict=True):
        torch.testing.assert_close(a, b)
    target = build_target(synced)
    ema_update(target, synced, momentum=0.5)
    assert set(target.state_dict()) == {k for k in reference if not k.startswith("predictor.")}
