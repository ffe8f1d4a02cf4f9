"""Two gloo ranks on CPU: the alignment loss sees the negatives of every rank, and gradients
through the all-gather reach each rank's own keys exactly as in one process."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.nn.functional as F

N, D, E, T = 2, 3, 4, 0.2


def _data():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2 * N, D, E, generator=g)
    z = torch.randn(2 * N, D, E, generator=g)
    ids = torch.tensor([[0, 1, 1], [2, 0, 0], [1, 1, 1], [0, 3, 2]])
    w = torch.tensor([[1, 0.5, 0.5], [1, 0.5, 0.5], [1 / 3] * 3, [1, 1, 1]])
    return q, z, ids, w


def _reference(q, z, ids, w, r):
    """Rank r's loss from the formula: anchors of images r*N.., keys of every image."""
    num, den = 0.0, 0.0
    qn, zn = F.normalize(q, dim=-1), F.normalize(z, dim=-1)
    for i in range(r * N, (r + 1) * N):
        for j in range(D):
            terms = [qn[i, j] @ zn[i2, j2] / T for i2 in range(2 * N) for j2 in range(D)
                     if (i2, j2) == (i, j) or not (i2 == i and ids[i2, j2] == ids[i, j])]
            loss = torch.logsumexp(torch.stack(terms), 0) - qn[i, j] @ zn[i, j] / T
            num, den = num + w[i, j] * loss, den + w[i, j]
    return num / den


WORKER = """
import sys, torch
from pretrain import distributed as dist
from pretrain.losses import anatomy_nce
q, z, ids, w = torch.load(sys.argv[1], weights_only=True)
dist.init_from_env("cpu")
r, n = dist.rank(), q.shape[0] // 2
sl = slice(r * n, (r + 1) * n)
zr = z[sl].clone().requires_grad_(True)
loss = anatomy_nce(q[sl], zr, ids[sl], w[sl], float(sys.argv[3]))
loss.backward()
torch.save((loss.detach(), zr.grad), f"{sys.argv[2]}/rank{r}.pt")
dist.cleanup()
"""


def test_two_ranks_match_one_process(tmp_path):
    q, z, ids, w = _data()
    torch.save((q, z, ids, w), tmp_path / "data.pt")
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # gloo on CPU can abort a rank while the group is torn down, after both ranks saved their
    # results ("terminate called without an active exception"; seen in 2 of 4 full-suite runs on
    # the 2-core machine, never alone): such a launch is tried again, at most twice
    for _attempt in range(3):
        for r in range(2):
            (tmp_path / f"rank{r}.pt").unlink(missing_ok=True)
        ran = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              str(tmp_path / "worker.py"), str(tmp_path / "data.pt"), str(tmp_path), str(T)],
                             env=env, capture_output=True, text=True)
        teardown_abort = "terminate called without an active exception" in ran.stderr
        if ran.returncode == 0 or not teardown_abort:
            break
    assert ran.returncode == 0, ran.stderr[-3000:]
    zf = z.clone().requires_grad_(True)
    refs = [_reference(q, zf, ids, w, r) for r in range(2)]
    sum(refs).backward()
    for r in range(2):
        loss, grad = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        torch.testing.assert_close(loss, refs[r].detach())
        torch.testing.assert_close(grad, zf.grad[r * N:(r + 1) * N])  # summed over ranks' losses
