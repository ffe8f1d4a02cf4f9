"""Draws that found no anatomy (id -1, all-zero pooled rows) never reach a BatchNorm: adding
them changes neither the loss nor the batch statistics of the valid rows."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pretrain.model import ModelConfig, build_online, build_target, mlp, through_valid_rows
from pretrain.step import ObjectiveConfig, StepInputs, compute_loss, prepare_inputs

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = ModelConfig(fpn_dim=16, proj_hidden=32, proj_dim=8, pred_hidden=32, scales=2)
OBJ = ObjectiveConfig(resolution=64, scales=2, k_samples=4)


def _frames_and_masks(n=4, s=64, k=3):
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 255, (n, s, s), generator=g, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    masks = torch.zeros(n, k, s, s, dtype=torch.bool)
    for i in range(n):
        masks[i, 0] = yy < s // 2
        masks[i, 1] = (yy >= s // 2) & (xx < s // 2 + 4 * i)
        if i % 2:  # some frames have a small third structure
            masks[i, 2] = (yy - 40) ** 2 + (xx - 44) ** 2 < 64
    return frames, masks


def _with_invalid_draws(inputs: StepInputs, extra: int = 3, at: int = 1) -> StepInputs:
    """The same draws with ``extra`` invalid ones (id -1, weight 0, zero pooling row) inserted
    at column ``at`` of every image, view and scale."""
    def insert(t: torch.Tensor, fill) -> torch.Tensor:
        pad = torch.full((t.shape[0], extra, *t.shape[2:]), fill, dtype=t.dtype)
        return torch.cat([t[:, :at], pad, t[:, at:]], dim=1)

    return StepInputs(inputs.images, inputs.target_images, [insert(m, 0.0) for m in inputs.matrices],
                      [insert(i, -1) for i in inputs.align_ids], [insert(w, 0.0) for w in inputs.align_weights],
                      [insert(w, 0.0) for w in inputs.pred_weights])


def _batchnorm_stats(*nets) -> list[torch.Tensor]:
    return [b for net in nets for m in net.modules() if isinstance(m, nn.BatchNorm1d)
            for b in (m.running_mean, m.running_var)]


def test_invalid_draws_change_neither_loss_nor_batchnorm_statistics():
    torch.manual_seed(0)
    online = build_online(CFG).train()
    target = build_target(online).train()
    frames, masks = _frames_and_masks()
    inputs = prepare_inputs(frames, masks, OBJ, torch.Generator().manual_seed(3))
    assert all((ids >= 0).all() for ids in inputs.align_ids)  # the reference batch is all valid
    padded = _with_invalid_draws(inputs)

    results = []
    for batch in (inputs, padded):
        o, t = copy.deepcopy(online), copy.deepcopy(target)
        loss, parts = compute_loss(o, t, batch, OBJ)
        loss.backward()
        grads = [p.grad.clone() for p in o.parameters() if p.grad is not None]
        results.append((loss.detach(), parts, _batchnorm_stats(o.projector, o.predictor, t.projector), grads))
    (l0, p0, s0, g0), (l1, p1, s1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-6, atol=1e-7)
    for key in p0:
        torch.testing.assert_close(p1[key], p0[key], rtol=1e-6, atol=1e-7)
    for a, b in zip(s0, s1, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)  # the MLPs saw exactly the valid rows
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)  # summation order only
    changed = [not torch.equal(a, b) for a, b in zip(s0, _batchnorm_stats(online.projector), strict=False)]
    assert any(changed)  # the forward did update the running statistics


def test_zero_rows_would_shift_the_statistics_but_do_not_reach_the_mlp():
    """The check above can fail: fed to the MLP, all-zero rows move its BatchNorm statistics."""
    torch.manual_seed(0)
    x = torch.randn(6, 8) + 2.0
    padded = torch.cat([x[:2], torch.zeros(4, 8), x[2:]])
    valid = torch.tensor([True, True, False, False, False, False, True, True, True, True])
    naive, masked, reference = (mlp(8, 16, 4).train() for _ in range(3))
    masked.load_state_dict(naive.state_dict())
    reference.load_state_dict(naive.state_dict())
    naive(padded)
    out = through_valid_rows(masked, padded, valid)
    ref = reference(x)
    assert not torch.equal(naive[1].running_mean, reference[1].running_mean)
    assert torch.equal(masked[1].running_mean, reference[1].running_mean)
    assert torch.equal(out[valid], ref) and torch.equal(out[~valid], torch.zeros(4, 4))
    every = torch.ones(6, dtype=torch.bool)
    assert torch.equal(through_valid_rows(reference, x, every), reference(x))  # all valid: module(x) itself


def test_a_batch_without_anatomy_gives_a_finite_zero_loss_with_gradients():
    torch.manual_seed(0)
    online = build_online(CFG).train()
    target = build_target(online).train()
    frames, _ = _frames_and_masks()
    empty = torch.zeros(4, 3, 64, 64, dtype=torch.bool)
    inputs = prepare_inputs(frames, empty, OBJ, torch.Generator().manual_seed(3))
    assert all((ids < 0).all() for ids in inputs.align_ids)
    loss, _ = compute_loss(online, target, inputs, OBJ)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(torch.isfinite(p.grad).all() for p in online.parameters() if p.grad is not None)
