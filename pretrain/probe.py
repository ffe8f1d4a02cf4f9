"""Online probes: how good the frozen backbone features are, measured while pre-training runs.

``pretrain run --probe busi-cls,busi-seg --probe-root DIR`` loads labelled tasks once (through
the registry reader, letter-boxed to the pre-training resolution) and at step 0 and every
``--probe-every`` steps scores the frozen backbone on each. The network is in eval mode for a
probe (BatchNorm running statistics), so probing never changes training. Nothing here decides
anything: it is a read-out that shows whether pre-training learns.

- A classification task (``busi-cls``, ``pocus-cls``): a weighted k-nearest-neighbour
  classifier (cosine similarity, k = 20, weights exp(sim / 0.07), as in DINO's kNN evaluation)
  on the global-average-pooled last backbone stage, leave-one-group-out: every frame is a query
  whose neighbours come from the other groups only (patient / video; each frame its own group
  where the dataset has none), so small probe sets still give every frame a vote and no group
  leaks. Its reference is the majority-class rate.
- A segmentation task (``busi-seg``, ``udiat-seg``, ``tn3k-seg``, ``hmcqu-seg``): a dense linear
  probe, the read-out the method is built for (anatomy-anchored, per-region features). Every
  backbone stage is resampled to a stride-8 grid and concatenated; a ridge regression from those
  per-cell features to the cell's foreground share is fitted in closed form on four of five
  group folds, its threshold chosen on the same training cells, and scored as the mean Dice of
  the held-out frames (logits upsampled to the frame). Its reference is the same probe on the
  raw pixels of each cell (an 8 x 8 patch): what a linear read-out gets with no features at all.
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
    """``task``: an evaluate task, or a comma list of them (``busi-cls,busi-seg``); ``root``: the
    tasks' dataset folder (None: the registry's environment variable; one folder serves only
    tasks of one dataset); ``every``: steps between probes; ``max_frames``: frames loaded per
    task (random subset, fixed seed); ``k`` neighbours and ``temperature`` of the kNN;
    ``folds`` group folds and ``ridge`` penalty (share of the training cells, on standardised
    features) of the dense probe."""

    task: str
    root: str | None = None
    every: int = 25
    max_frames: int = 400
    k: int = 20
    temperature: float = 0.07
    folds: int = 5
    ridge: float = 1e-2

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"--probe-every must be >= 1, got {self.every}")
        if self.k < 1 or self.max_frames < 4:
            raise ValueError(f"probe k = {self.k} must be >= 1 and max_frames = {self.max_frames} >= 4")
        if self.folds < 2 or self.ridge <= 0:
            raise ValueError(f"probe folds = {self.folds} must be >= 2 and ridge = {self.ridge} > 0")
        if not self.tasks:
            raise ValueError("--probe names no task")

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.task.split(",") if t.strip())


@dataclass
class ProbeSet:
    """Labelled frames: images (N, R, R) uint8, groups (N,) int64 group codes, and either labels
    (N,) int64 with ``classes`` in label order (classification) or masks (N, R, R) uint8 binary
    foreground (segmentation; labels None, classes empty)."""

    name: str
    images: np.ndarray
    labels: np.ndarray | None
    groups: np.ndarray
    classes: tuple[str, ...]
    masks: np.ndarray | None = None

    @property
    def dense(self) -> bool:
        return self.masks is not None

    def chance(self) -> float:
        """Accuracy of always answering the majority class (classification only)."""
        return float(np.bincount(self.labels, minlength=len(self.classes)).max() / len(self.labels))


def group_codes(groups: np.ndarray) -> np.ndarray:
    """(N,) group keys (any hashable) -> (N,) int64 codes, 0..G-1 in sorted key order."""
    _, codes = np.unique(np.asarray([str(g) for g in groups.tolist()]), return_inverse=True)
    return codes.astype(np.int64)


def load_probes(cfg: ProbeConfig, resolution: int, opener=None) -> list[ProbeSet]:
    """Read every task of ``cfg`` (see ``load_probe``).

    Raises:
        ValueError: an unknown task, one folder given for tasks of several datasets, or a task
            with too few classes / groups.
    """
    from evaluate.tasks import TASKS

    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"--probe {', '.join(unknown)}: not a task; choose from {sorted(TASKS)}")
    datasets = {TASKS[t].dataset for t in cfg.tasks}
    if cfg.root and len(datasets) > 1:
        raise ValueError(f"--probe-root is one dataset's folder, but the probes name {sorted(datasets)}: "
                         "probe one dataset per run, or set the datasets' ANAUS_<NAME>_ROOT variables")
    return [load_probe(cfg, resolution, opener, task) for task in cfg.tasks]


def load_probe(cfg: ProbeConfig, resolution: int, opener=None, task_name: str | None = None) -> ProbeSet:
    """Read one task (``task_name``, default the first of ``cfg``). ``opener(dataset, root)`` ->
    reader (default ``maskgen.datasets.registry.open_dataset``).

    Raises:
        ValueError: an unknown task, or fewer than two groups (and, for classification, classes).
    """
    # evaluate.tasks owns the task definitions and the letter-boxed loading; importing it
    # here keeps one copy of that rule (it imports only maskgen's readers, never SAM)
    from evaluate.tasks import CLASSIFICATION, TASKS, load_task

    name = task_name or cfg.tasks[0]
    if name not in TASKS:
        raise ValueError(f"--probe {name!r} is not a task; choose from {sorted(TASKS)}")
    task = TASKS[name]
    if opener is None:
        from maskgen.datasets.registry import open_dataset as opener
    reader = opener(task.dataset, Path(cfg.root) if cfg.root else None)
    data = load_task(task, reader, resolution, cfg.max_frames, seed=0, progress=False)
    groups = group_codes(data.groups)
    n_groups = len(set(groups.tolist()))
    if task.kind != CLASSIFICATION:
        if n_groups < cfg.folds:
            raise ValueError(f"--probe {name}: {len(data)} frames in {n_groups} group(s): the dense probe "
                             f"needs at least {cfg.folds} groups")
        return ProbeSet(name, data.images, None, groups, (), masks=data.masks)
    if n_groups < 2 or len(set(data.labels.tolist())) < 2:
        raise ValueError(f"--probe {name}: {len(data)} frames in {n_groups} group(s) "
                         f"with {len(set(data.labels.tolist()))} class(es): need two of each")
    return ProbeSet(name, data.images, data.labels, groups, data.class_names)


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


DENSE_STRIDE = 8  # the dense probe's grid: one cell per 8 x 8 pixels


def _network_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    from pretrain.views import to_network_input

    x = torch.from_numpy(images).to(device)
    return to_network_input(x.float().div(255).unsqueeze(1))


@torch.no_grad()
def stage_grid_features(body: torch.nn.Module, images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Every stage of ``body`` on images (n, R, R) uint8, resampled to the stride-8 grid
    (area-averaged where finer, bilinear where coarser) and concatenated -> (n, g, g, C) float32
    with g = R / 8, C the sum of the stage widths. Call with ``body`` in eval mode."""
    grid = images.shape[-1] // DENSE_STRIDE
    stages = body(_network_input(images, device))
    out = []
    for f in stages:
        f = f.float()
        if f.shape[-1] > grid:
            f = F.adaptive_avg_pool2d(f, grid)
        elif f.shape[-1] < grid:
            f = F.interpolate(f, size=(grid, grid), mode="bilinear", align_corners=False)
        out.append(f)
    return torch.cat(out, 1).permute(0, 2, 3, 1)


def pixel_grid_features(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The dense probe's reference features: each grid cell's raw 8 x 8 pixels, images (n, R, R)
    uint8 -> (n, g, g, 64) float32 in [0, 1]."""
    x = torch.from_numpy(images).to(device).float().div(255).unsqueeze(1)   # (n, 1, R, R)
    cells = F.pixel_unshuffle(x, DENSE_STRIDE)                               # (n, 64, g, g)
    return cells.permute(0, 2, 3, 1)


def _group_folds(groups: np.ndarray, folds: int) -> np.ndarray:
    """(N,) group codes -> (N,) fold of each frame: groups dealt round-robin in a fixed shuffle."""
    order = np.random.default_rng(0).permutation(int(groups.max()) + 1)
    fold_of_group = np.empty_like(order)
    fold_of_group[order] = np.arange(len(order)) % folds
    return fold_of_group[groups]


def dense_ridge_dice(features, masks: np.ndarray, groups: np.ndarray, folds: int = 5,
                     ridge: float = 1e-2, batch: int = 32, device: torch.device | None = None) -> float:
    """The dense linear probe's score: mean held-out Dice over all frames.

    ``features(images_index) -> (n, g, g, C)`` float32 per-cell features of those frames (called
    twice per frame: once to accumulate the normal equations, once to predict); masks (N, R, R)
    uint8 binary; groups (N,) int64. For each of ``folds`` group folds a ridge regression (on
    features standardised by their overall spread, unpenalised intercept, penalty ``ridge`` x
    the training cells) maps a cell's features to its foreground share; the threshold that
    maximises the training cells' Dice is kept; held-out frames are scored at full resolution
    with the cell logits upsampled bilinearly. Runs in float64 for the solve.
    """
    n = len(masks)
    fold = _group_folds(groups, folds)
    device = device or torch.device("cpu")
    size = masks.shape[-1]
    if size % DENSE_STRIDE:
        raise ValueError(f"dense probe frames of {size} px: the side must be a multiple of {DENSE_STRIDE}")
    target = F.avg_pool2d(torch.from_numpy(masks).float().unsqueeze(1), DENSE_STRIDE).squeeze(1)  # (N, g, g)
    gram = xty = None
    for start in range(0, n, batch):                       # pass 1: per-fold normal equations
        idx = np.arange(start, min(n, start + batch))
        x = features(idx).double().to(device)
        x = torch.cat([x, torch.ones_like(x[..., :1])], -1)                    # (b, g, g, C+1)
        if gram is None:
            gram = torch.zeros(folds, x.shape[-1], x.shape[-1], dtype=torch.float64, device=device)
            xty = torch.zeros(folds, x.shape[-1], dtype=torch.float64, device=device)
        y = target[idx].double().to(device)
        for f in np.unique(fold[idx]):
            sel = torch.from_numpy(fold[idx] == f).to(device)
            xf = x[sel].reshape(-1, x.shape[-1])
            gram[f] += xf.t() @ xf
            xty[f] += xf.t() @ y[sel].reshape(-1)
    dims = gram.shape[-1] - 1
    total = gram.sum(0)
    cells = total[-1, -1]
    mean = total[-1, :dims] / cells
    var = (total.diagonal()[:dims] / cells - mean ** 2).clamp_min(1e-12)
    weights = []
    for f in range(folds):                                 # leave fold f out
        a, b = total - gram[f], xty.sum(0) - xty[f]
        penalty = torch.zeros(dims + 1, dtype=torch.float64, device=device)
        penalty[:dims] = ridge * a[-1, -1] * var             # ridge on standardised features
        weights.append(torch.linalg.solve(a + torch.diag(penalty), b))
    w = torch.stack(weights, 1)                            # (C+1, folds)
    edges = torch.linspace(-0.5, 1.5, 201, dtype=torch.float64)
    pos = torch.zeros(folds, len(edges) + 1, dtype=torch.float64)   # training cells per logit bin
    neg = torch.zeros_like(pos)
    held_out = [None] * n
    for start in range(0, n, batch):                       # pass 2: logits of every fold's probe
        idx = np.arange(start, min(n, start + batch))
        x = features(idx).double().to(device)
        x = torch.cat([x, torch.ones_like(x[..., :1])], -1)
        logits = (x @ w).cpu()                                                 # (b, g, g, folds)
        y = target[idx].double()
        for j, i in enumerate(idx):
            for f in range(folds):
                if f == fold[i]:
                    held_out[i] = logits[j, ..., f].float()
                    continue
                bins = torch.bucketize(logits[j, ..., f].contiguous().reshape(-1), edges)
                pos[f].index_add_(0, bins, y[j].reshape(-1))
                neg[f].index_add_(0, bins, 1 - y[j].reshape(-1))
    # predicting foreground for logits above edge t: Dice = 2 TP / (2 TP + FP + FN)
    tp = pos.flip(1).cumsum(1).flip(1)[:, 1:]              # cells with logit >= edges[t]
    fp = neg.flip(1).cumsum(1).flip(1)[:, 1:]
    fn = pos.sum(1, keepdim=True) - tp
    threshold = edges[(2 * tp / (2 * tp + fp + fn).clamp_min(1e-12)).argmax(1)]   # (folds,)
    dice = []
    for i in range(n):
        up = F.interpolate(held_out[i][None, None], size=(size, size), mode="bilinear",
                           align_corners=False)[0, 0]
        pred = up >= float(threshold[fold[i]])
        truth = torch.from_numpy(masks[i] > 0)
        inter, total_px = (pred & truth).sum(), pred.sum() + truth.sum()
        dice.append(1.0 if total_px == 0 else float(2 * inter / total_px))
    return float(np.mean(dice))


class OnlineProbe:
    """Scores a backbone on its ``ProbeSet``s: ``probe(body) -> {"probe/<task>/<metric>": v}``,
    ``probe/<task>/knn_acc`` (classification) or ``probe/<task>/dice`` (segmentation).
    ``references()`` gives what each is read against: ``probe/<task>/chance`` (majority class)
    and ``probe/<task>/pixels`` (the dense probe on raw pixels), computed once."""

    def __init__(self, probes: list[ProbeSet], cfg: ProbeConfig, device: torch.device):
        self.sets, self.cfg, self.device = probes, cfg, device
        self._references: dict[str, float] | None = None

    def references(self) -> dict[str, float]:
        if self._references is None:
            self._references = {}
            for p in self.sets:
                if p.dense:
                    value = self._dense(p, lambda idx, p=p: pixel_grid_features(p.images[idx], self.device))
                    self._references[f"probe/{p.name}/pixels"] = value
                else:
                    self._references[f"probe/{p.name}/chance"] = p.chance()
        return self._references

    def _dense(self, p: ProbeSet, features) -> float:
        return dense_ridge_dice(features, p.masks, p.groups, self.cfg.folds, self.cfg.ridge, device=self.device)

    def __call__(self, body: torch.nn.Module) -> dict[str, float]:
        was_training = body.training
        body.eval()
        out = {}
        try:
            for p in self.sets:
                if p.dense:
                    out[f"probe/{p.name}/dice"] = self._dense(
                        p, lambda idx, p=p: stage_grid_features(body, p.images[idx], self.device))
                else:
                    feats = pooled_features(body, p.images, self.device)
                    labels = torch.from_numpy(p.labels).to(self.device)
                    groups = torch.from_numpy(p.groups).to(self.device)
                    out[f"probe/{p.name}/knn_acc"] = knn_accuracy(feats, labels, groups, len(p.classes),
                                                                  self.cfg.k, self.cfg.temperature)
        finally:
            body.train(was_training)
        return out
