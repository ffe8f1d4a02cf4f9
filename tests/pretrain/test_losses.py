"""Both losses against slow loop versions written straight from the formulas, plus properties."""

from __future__ import annotations

import math

import pytest
import torch

from pretrain.losses import alignment_loss, anatomy_nce, prediction_loss
from pretrain.masks import sample_ids


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def slow_nce(q, z, ids, w, t):
    """For anchor (i, j): -log exp(s_pos) / sum over valid keys, minus same-image same-id others."""
    n, d, _ = q.shape
    num = den = 0.0
    for i in range(n):
        for j in range(d):
            if w[i, j] == 0:
                continue
            terms = []
            for i2 in range(n):
                for j2 in range(d):
                    if ids[i2, j2] < 0:
                        continue
                    if (i2, j2) != (i, j) and i2 == i and ids[i2, j2] == ids[i, j]:
                        continue
                    terms.append(_cos(q[i, j], z[i2, j2]) / t)
            pos = _cos(q[i, j], z[i, j]) / t
            loss = -pos + math.log(sum(math.exp(x) for x in terms))
            num += float(w[i, j]) * loss
            den += float(w[i, j])
    return num / den


def slow_pred(p, z, w):
    num = den = 0.0
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            num += float(w[i, j]) * (2 - 2 * _cos(p[i, j], z[i, j]))
            den += float(w[i, j])
    return num / den


def _draws(n=3, d=5, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(n, k, generator=g)
    weights[1, 2:] = 0   # fewer ids in one image
    weights[2] = 0       # an image with no common anatomy (invalid draws)
    ids, w = sample_ids(weights, d, g)
    q = torch.randn(n, d, 8, generator=g)
    z = torch.randn(n, d, 8, generator=g)
    # duplicates of an id pool to the same feature: make it so
    for i in range(n):
        for j in range(d):
            first = int((ids[i] == ids[i, j]).nonzero()[0])
            q[i, j], z[i, j] = q[i, first], z[i, first]
    return q, z, ids, w


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_nce_matches_loop(t):
    q, z, ids, w = _draws()
    assert (ids[2] == -1).all() and (w[2] == 0).all()
    assert float(anatomy_nce(q, z, ids, w, t)) == pytest.approx(slow_nce(q, z, ids, w, t), rel=1e-5)


def test_alignment_symmetric_and_matches_loop():
    q1, z1, ids, w = _draws(seed=1)
    q2, z2, _, _ = _draws(seed=2)
    q2, z2 = q2.clone(), z2.clone()
    q2[ids < 0] = 0
    ref = 0.5 * (slow_nce(q1, z2, ids, w, 0.1) + slow_nce(q2, z1, ids, w, 0.1))
    got = alignment_loss(q1, q2, z1, z2, ids, w, 0.1)
    assert float(got) == pytest.approx(ref, rel=1e-5)
    swapped = alignment_loss(q2, q1, z2, z1, ids, w, 0.1)
    assert float(swapped) == pytest.approx(float(got), rel=1e-6)


def test_prediction_matches_loop_and_closed_form():
    p, z, _, w = _draws(seed=3)
    assert float(prediction_loss(p, z, w)) == pytest.approx(slow_pred(p, z, w), rel=1e-5)
    assert float(prediction_loss(z, 3 * z, w)) == pytest.approx(0.0, abs=1e-6)
    assert float(prediction_loss(z, -z, w)) == pytest.approx(4.0, abs=1e-5)


def test_batch_permutation_invariance():
    q, z, ids, w = _draws(n=4, seed=4)
    perm = torch.tensor([2, 0, 3, 1])
    a = anatomy_nce(q, z, ids, w, 0.1)
    b = anatomy_nce(q[perm], z[perm], ids[perm], w[perm], 0.1)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    assert float(prediction_loss(q, z, w)) == pytest.approx(float(prediction_loss(q[perm], z[perm], w[perm])), rel=1e-6)


def test_absent_masks_contribute_nothing():
    """Changing features of invalid draws (anatomy absent from a view) leaves both losses alone,
    and their gradients stay zero and finite."""
    q, z, ids, w = _draws(seed=5)
    q2, z2 = q.clone(), z.clone()
    q2[ids < 0] = 100 * torch.randn_like(q2[ids < 0])
    z2[ids < 0] = -7.0
    q2.requires_grad_(True)
    a = anatomy_nce(q, z, ids, w, 0.1)
    b = anatomy_nce(q2, z2, ids, w, 0.1)
    assert float(a) == pytest.approx(float(b.detach()), rel=1e-6)
    b.backward()
    assert torch.isfinite(q2.grad).all() and (q2.grad[ids < 0] == 0).all()
    assert float(prediction_loss(q, z, w)) == pytest.approx(float(prediction_loss(q2.detach(), z2, w)), rel=1e-6)


def test_duplicate_draws_weighted_once():
    """Drawing an id several times changes nothing: each distinct anatomy counts once."""
    q = torch.randn(2, 1, 8)
    z = torch.randn(2, 1, 8)
    ids = torch.zeros(2, 1, dtype=torch.long)
    w = torch.ones(2, 1)
    single = anatomy_nce(q, z, ids, w, 0.1)
    q3, z3 = q.expand(2, 3, 8), z.expand(2, 3, 8)
    ids3 = torch.zeros(2, 3, dtype=torch.long)
    w3 = torch.full((2, 3), 1 / 3)
    # the other frame's triplicated negative adds log(3) to its term: check against the loop
    assert float(anatomy_nce(q3, z3, ids3, w3, 0.1)) == pytest.approx(slow_nce(q3, z3, ids3, w3, 0.1), rel=1e-5)
    assert float(single) == pytest.approx(slow_nce(q, z, ids, w, 0.1), rel=1e-5)
