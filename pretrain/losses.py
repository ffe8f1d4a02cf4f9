"""The two objectives of stage two, per scale.

Notation: an image i of the (local) batch has D drawn mask ids ``ids[i, j]`` with draw weights
``w[i, j]`` = 1 / (times id ids[i, j] was drawn in image i) (0 for an invalid draw, id -1).

Anatomy-separating alignment (InfoNCE, temperature t), anchors q (online predictions of one
view), keys z (target projections of the other view, gathered over every rank), both
L2-normalised; for anchor a = (i, j), positive p = (i, j) in the key set:

    l(a) = -log( exp(q_a . z_p / t) / sum_{b in N(a) + {p}} exp(q_a . z_b / t) )

where N(a) holds every valid key except those of image i with the same id as a (the same
anatomy drawn twice is not a negative of itself): i.e. the other anatomy of the frame and all
anatomy of the other frames. L = sum_a w_a l(a) / sum_a w_a; symmetric: (L(q1, z2) + L(q2, z1)) / 2.

Core-region prediction: online prediction p (corrupted region), target projection z (clean
region), per drawn mask: 2 - 2 cos(p, z), averaged with the draw weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrain.distributed import all_gather_cat, rank


def anatomy_nce(q: torch.Tensor, z: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor,
                temperature: float) -> torch.Tensor:
    """One direction of the alignment loss.

    Args:
        q: (n, D, E) online predictions (anchors); z: (n, D, E) target projections (keys, no grad
            needed); ids: (n, D) long drawn ids, -1 invalid; weights: (n, D) float draw weights.
    Returns: scalar; 0 (with a graph) when no draw is valid.
    """
    n, d, _ = q.shape
    q = F.normalize(q.flatten(0, 1).float(), dim=-1)                       # (n*d, E)
    z_all = F.normalize(all_gather_cat(z.flatten(0, 1)).float(), dim=-1)    # (W*n*d, E)
    ids_all = all_gather_cat(ids.flatten())                                  # (W*n*d,)
    img_all = torch.arange(ids_all.numel(), device=q.device) // d
    img = torch.arange(n * d, device=q.device) // d + rank() * n
    pos = torch.arange(n * d, device=q.device) + rank() * n * d
    logits = q @ z_all.t() / temperature                                     # (n*d, W*n*d)
    same = (img[:, None] == img_all[None]) & (ids.flatten()[:, None] == ids_all[None])
    is_pos = pos[:, None] == torch.arange(ids_all.numel(), device=q.device)[None]
    keep = is_pos | ((ids_all[None] >= 0) & ~same)  # the positive stays: finite for invalid anchors
    logits = logits.masked_fill(~keep, float("-inf"))
    per_anchor = torch.logsumexp(logits, 1) - logits.gather(1, pos[:, None])[:, 0]
    w = weights.flatten().float()
    per_anchor = torch.where(w > 0, per_anchor, torch.zeros_like(per_anchor))
    return (w * per_anchor).sum() / w.sum().clamp(min=1e-12)


def alignment_loss(q1, q2, z1, z2, ids, weights, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric anatomy-separating alignment: (nce(q1, z2) + nce(q2, z1)) / 2; all (n, D, E)."""
    return 0.5 * (anatomy_nce(q1, z2, ids, weights, temperature)
                  + anatomy_nce(q2, z1, ids, weights, temperature))


def prediction_loss(p: torch.Tensor, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Core-region prediction: p, z (n, D, E), weights (n, D) -> weighted mean of 2 - 2 cos."""
    cos = F.cosine_similarity(p.float(), z.float(), dim=-1)
    w = weights.float()
    return (w * (2 - 2 * cos)).sum() / w.sum().clamp(min=1e-12)
