"""Online probe: how good the frozen backbone features are, measured while pre-training runs.

``pretrain run --probe busi-cls --probe-root DIR`` loads a labelled classification task once
(through the registry reader, letter-boxed to the pre-training resolution) and at step 0 and
every ``--probe-every`` steps scores a weighted k-nearest-neighbour classifier (cosine
similarity, k = 20, weights exp(sim / 0.07), as in DINO's kNN evaluation) on the
global-average-pooled last backbone stage, leave-one-group-out: every frame is a query whose
neighbours come from the other groups only (patient / video; each frame its own group where the
dataset has none), so small probe sets still give every frame a vote and no group leaks. The network is in eval mode for the probe (BatchNorm
running statistics), so the probe never changes training. Nothing here decides anything: it is
a read-out that shows whether pre-training learns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeConfig:
    """``task``: an evaluate classification task (``busi-cls``, ``pocus-cls``); ``root``: its
    dataset folder (None: the registry's environment variable); ``every``: steps between
    probes; ``max_frames``: frames loaded (random subset, fixed seed); ``k`` neighbours."""

    task: str
    root: str | None = None
    every: int = 25
    max_frames: int = 400
    k: int = 20
    temperature: float = 0.07

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"--probe-every must be >= 1, got {self.every}")
        if self.k < 1 or self.max_frames < 4:
            raise ValueError(f"probe k = {self.k} must be >= 1 and max_frames = {self.max_frames} >= 4")


@dataclass
class ProbeSet:
    """Labelled frames: images (N, R, R) uint8, labels (N,) int64, groups (N,) int64 group codes,
    ``classes`` in label order."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    classes: tuple[str, ...]

    def chance(self) -> float:
        """Accuracy of always answering the majority class."""
        return float(np.bincount(self.labels, minlength=len(self.classes)).max() / len(self.labels))


def group_codes(groups: np.ndarray) -> np.ndarray:
    """(N,) group keys (any hashable) -> (N,) int64 codes, 0..G-1 in sorted key order."""
    _, codes = np.unique(np.asarray([str(g) for g in groups.tolist()]), return_inverse=True)
    return codes.astype(np.int64)


def load_probe(cfg: ProbeConfig, resolution: int, opener=None) -> ProbeSet:
    """Read ``cfg.task``'s frames (classification only). ``opener(dataset, root)`` -> reader
    (default ``maskgen.datasets.registry.open_dataset``).

    Raises:
        ValueError: not a classification task, or fewer than two classes / groups per half.
    """
    # evaluate.tasks owns the task definitions and the letter-boxed loading; importing it
    # here keeps one copy of that rule (it imports only maskgen's readers, never SAM)
    from evaluate.tasks import CLASSIFICATION, TASKS, load_task

    if cfg.task not in TASKS or TASKS[cfg.task].kind != CLASSIFICATION:
        names = sorted(n for n, t in TASKS.items() if t.kind == CLASSIFICATION)
        raise ValueError(f"--probe {cfg.task!r} is not a classification task; choose one of {names}")
    task = TASKS[cfg.task]
    if opener is None:
        from maskgen.datasets.registry import open_dataset as opener
    reader = opener(task.dataset, Path(cfg.root) if cfg.root else None)
    data = load_task(task, reader, resolution, cfg.max_frames, seed=0, progress=False)
    groups = group_codes(data.groups)
    if len(set(groups.tolist())) < 2 or len(set(data.labels.tolist())) < 2:
        raise ValueError(f"--probe {cfg.task}: {len(data)} frames in {len(set(groups.tolist()))} group(s) "
                         f"with {len(set(data.labels.tolist()))} class(es): need two of each")
    return ProbeSet(cfg.task, data.images, data.labels, groups, data.class_names)


@torch.no_grad()
def pooled_features(body: torch.nn.Module, images: np.ndarray, device: torch.device,
                    batch: int = 64) -> torch.Tensor:
    """Backbone ``body`` (features_only ResNet) on images (N, R, R) uint8 -> (N, C) L2-normalised
    global-average-pooled last-stage features (float32, on ``device``). Eval mode inside."""
    from pretrain.views import to_network_input

    was_training = body.training
    body.eval()
    out = []
    try:
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).to(device)
            x = to_network_input(x.float().div(255).unsqueeze(1))
            out.append(body(x)[-1].float().mean((2, 3)))
    finally:
        body.train(was_training)
    return F.normalize(torch.cat(out), dim=1)


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, classes: int,
                 k: int = 20, temperature: float = 0.07) -> float:
    """Leave-one-group-out weighted kNN: features (N, C) L2-normalised, labels (N,) long, groups
    (N,) long -> accuracy over all N frames, each voted by its k most similar frames of other
    groups (weights exp(sim / t); frames of its own group, itself included, never vote)."""
    sim = features @ features.t()                                         # (N, N)
    sim = sim.masked_fill(groups[:, None] == groups[None, :], float("-inf"))
    others = int((groups[:, None] != groups[None, :]).sum(1).min())
    top, idx = sim.topk(max(1, min(k, others)), dim=1)
    weights = torch.where(torch.isfinite(top), (top / temperature).exp(), torch.zeros_like(top))
    votes = (F.one_hot(labels[idx], classes).float() * weights[..., None]).sum(1)
    return float((votes.argmax(1) == labels).float().mean())


class OnlineProbe:
    """Scores a backbone on a ``ProbeSet``: ``probe(body) -> {"probe/knn_acc": a}``."""

    def __init__(self, probe: ProbeSet, cfg: ProbeConfig, device: torch.device):
        self.set, self.cfg, self.device = probe, cfg, device
        self.labels = torch.from_numpy(probe.labels).to(device)
        self.groups = torch.from_numpy(probe.groups).to(device)

    def __call__(self, body: torch.nn.Module) -> dict[str, float]:
        feats = pooled_features(body, self.set.images, self.device)
        acc = knn_accuracy(feats, self.labels, self.groups, len(self.set.classes), self.cfg.k,
                           self.cfg.temperature)
        return {"probe/knn_acc": acc}
