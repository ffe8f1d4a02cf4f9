"""Online probe: how good the frozen backbone features are, measured while pre-training runs.

``pretrain run --probe busi-cls --probe-root DIR`` loads a labelled classification task once
(through the registry reader, letter-boxed to the pre-training resolution), splits it by group
(patient / video; each frame its own group where the dataset has none) into a reference and a
query half, and at step 0 and every ``--probe-every`` steps scores a weighted k-nearest-neighbour
classifier (cosine similarity, k = 20, weights exp(sim / 0.07), as in DINO's kNN evaluation) on
the global-average-pooled last backbone stage. The network is in eval mode for the probe (BatchNorm
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
    """Labelled frames split by group: images (N, R, R) uint8, labels (N,) int64, query (N,)
    bool (True: scored, False: reference), ``classes`` in label order."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    query: np.ndarray
    classes: tuple[str, ...]

    def chance(self) -> float:
        """Accuracy of always answering the reference half's majority class."""
        ref = np.bincount(self.labels[~self.query], minlength=len(self.classes))
        return float(np.mean(self.labels[self.query] == ref.argmax()))


def group_split(groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) group keys -> (N,) bool query mask: half of the groups (shuffled by ``seed``)."""
    unique = np.array(sorted(set(groups.tolist())), dtype=object)
    order = np.random.default_rng(seed).permutation(len(unique))
    chosen = set(unique[order[: len(unique) // 2]].tolist())
    return np.array([g in chosen for g in groups.tolist()])


def load_probe(cfg: ProbeConfig, resolution: int, opener=None) -> ProbeSet:
    """Read ``cfg.task``'s frames (classification only). ``opener(dataset, root)`` -> reader
    (default ``maskgen.registry.open_dataset``).

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
        from maskgen.registry import open_dataset as opener
    reader = opener(task.dataset, Path(cfg.root) if cfg.root else None)
    data = load_task(task, reader, resolution, cfg.max_frames, seed=0, progress=False)
    query = group_split(data.groups)
    if query.all() or not query.any() or len(set(data.labels[~query].tolist())) < 2:
        raise ValueError(f"--probe {cfg.task}: {len(data)} frames in {len(set(data.groups))} groups "
                         "are too few to split into a reference and a query half with two classes")
    return ProbeSet(cfg.task, data.images, data.labels, query, data.class_names)


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


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, classes: int,
                 k: int = 20, temperature: float = 0.07) -> float:
    """Weighted kNN: features (N, C) normalised, labels (N,) long, query (N,) bool -> accuracy of
    the query rows voted by their k most similar reference rows (weights exp(sim / t))."""
    ref, qry = features[~query], features[query]
    sim = qry @ ref.t()                                                   # (Q, R)
    k = min(k, ref.shape[0])
    top, idx = sim.topk(k, dim=1)
    votes = F.one_hot(labels[~query][idx], classes).float() * (top / temperature).exp()[..., None]
    predicted = votes.sum(1).argmax(1)
    return float((predicted == labels[query]).float().mean())


class OnlineProbe:
    """Scores a backbone on a ``ProbeSet``: ``probe(body) -> {"probe/knn_acc": a}``."""

    def __init__(self, probe: ProbeSet, cfg: ProbeConfig, device: torch.device):
        self.set, self.cfg, self.device = probe, cfg, device
        self.labels = torch.from_numpy(probe.labels).to(device)
        self.query = torch.from_numpy(probe.query).to(device)

    def __call__(self, body: torch.nn.Module) -> dict[str, float]:
        feats = pooled_features(body, self.set.images, self.device)
        acc = knn_accuracy(feats, self.labels, self.query, len(self.set.classes), self.cfg.k,
                           self.cfg.temperature)
        return {"probe/knn_acc": acc}
