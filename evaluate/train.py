"""Fine-tuning with epoch selection on a validation split; the test fold is not an argument.

``fit`` sees only the training frames and the validation frames carved from the training
folds: it trains for ``epochs``, scores every epoch on validation, and returns the model at
the best epoch (ties keep the earliest). Only after that does the caller predict the test
fold, once. A ``Head`` adapts the loop to one task kind (model, optimiser, loss, prediction).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from evaluate.backbones import Backbone
from evaluate.metrics import SELECTION_METRIC, classification_metrics, segmentation_metrics
from evaluate.models import (
    Classifier,
    FPNSegmenter,
    build_maskrcnn,
    maskrcnn_inputs,
    maskrcnn_targets,
    maskrcnn_to_masks,
    segmentation_loss,
)
from maskgen.common.devices import autocast_dtype, prefers_channels_last
from maskgen.common.schedules import warmup_cosine

if TYPE_CHECKING:  # evaluate.profiles validates its protocols at import, and they import this module
    from evaluate.profiles import Profile

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A fine-tuning loss became NaN/inf: the cell fails with this reason."""


@dataclass
class Split:
    """Frames of one split: images (N,S,S) uint8, targets (N,) int64 labels or (N,S,S) uint8 masks."""

    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def take(cls, images: np.ndarray, targets: np.ndarray, index: np.ndarray) -> Split:
        return cls(torch.from_numpy(np.ascontiguousarray(images[index])),
                   torch.from_numpy(np.ascontiguousarray(targets[index])))


@dataclass
class FitResult:
    """The selected model, the epoch chosen (1-based) and every epoch's validation scores."""

    model: nn.Module
    best_epoch: int
    history: list[dict] = field(default_factory=list)


class Head:
    """Task-kind adapter: build the model, its optimiser, a loss, and predictions."""

    kind = ""

    def __init__(self, profile: Profile, num_classes: int = 0):
        self.profile, self.num_classes = profile, num_classes

    def metrics(self, pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def lr(self, step: int, total: int) -> float:
        raise NotImplementedError


class ClassificationHead(Head):
    kind = "classification"

    def build(self, backbone: Backbone) -> nn.Module:
        return Classifier(backbone.build(), self.num_classes, self.profile.cls_trainable_stages)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=self.profile.cls_lr)

    def lr(self, step: int, total: int) -> float:
        return self.profile.cls_lr  # the paper's constant Adam rate

    def loss(self, model, images, targets):
        return nn.functional.cross_entropy(model(images), targets)

    @torch.no_grad()
    def predict(self, model, images):
        return model(images).argmax(1)

    def metrics(self, pred, truth):
        return classification_metrics(pred, truth)


class SegmentationHead(Head):
    """What every segmentation head shares: SGD with warm-up + cosine, Dice / PPV / sensitivity.
    Subclasses build the model and own its loss and predictions."""

    kind = "segmentation"

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        p = self.profile
        return torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=p.seg_lr,
                               momentum=p.seg_momentum, weight_decay=p.seg_weight_decay)

    def lr(self, step: int, total: int) -> float:
        """Linear warm-up over the first 5% of steps, then cosine decay to zero."""
        return warmup_cosine(step, self.profile.seg_lr, max(1, total // 20), total)

    def metrics(self, pred, truth):
        return segmentation_metrics(pred, truth)


class LightFPNHead(SegmentationHead):
    """The light semantic head on the ResNet + FPN (``--seg-head fpn``; the CPU profiles and the
    frozen-backbone protocol): per-pixel logits, BCE + Dice loss."""

    def build(self, backbone: Backbone, frozen: bool = False) -> nn.Module:
        """The backbone's FPN (pre-trained, or the reference's step-0 FPN) is loaded when it has
        one, else the FPN is new. ``frozen``: backbone + FPN frozen, only the head trains."""
        p = self.profile
        channels = backbone.fpn_channels or p.seg_fpn_channels
        return FPNSegmenter(backbone.build(), p.seg_trainable_layers, channels, p.seg_head_channels,
                            backbone.fpn, frozen=frozen)

    def loss(self, model, images, targets):
        return segmentation_loss(model(images), targets)

    @torch.no_grad()
    def predict(self, model, images):
        return model(images) > 0


class MaskRCNNHead(SegmentationHead):
    """torchvision Mask R-CNN on the ResNet + FPN (``--seg-head maskrcnn``, the paper's): the
    foreground is one instance class; predictions are the union of the kept instance masks."""

    def build(self, backbone: Backbone) -> nn.Module:
        p = self.profile
        return build_maskrcnn(backbone.build(), p.resolution, p.seg_trainable_layers, backbone.fpn)

    def loss(self, model, images, targets):
        losses = model(maskrcnn_inputs(images), maskrcnn_targets(targets))
        return sum(losses.values())

    @torch.no_grad()
    def predict(self, model, images):
        return maskrcnn_to_masks(model(maskrcnn_inputs(images)), tuple(images.shape[-2:]))


SEGMENTATION_HEADS: dict[str, type[SegmentationHead]] = {"fpn": LightFPNHead, "maskrcnn": MaskRCNNHead}


def make_head(kind: str, profile: Profile, num_classes: int = 0, frozen: bool = False) -> Head:
    """The head of a task kind: classification, or the profile's segmentation head (``frozen``:
    the frozen-backbone protocol, which always trains the light head on frozen features)."""
    if kind == "classification":
        return ClassificationHead(profile, num_classes)
    return LightFPNHead(profile) if frozen else SEGMENTATION_HEADS[profile.seg_head](profile)


def _flip(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, segmentation: bool):
    """Random horizontal flip per frame (and its mask), vectorised."""
    flip = (torch.rand(len(images), generator=generator) < 0.5).to(images.device).view(-1, 1, 1)
    images = torch.where(flip, images.flip(-1), images)
    if segmentation:
        targets = torch.where(flip, targets.flip(-1), targets)
    return images, targets


def predict(head: Head, model: nn.Module, images: torch.Tensor, device: torch.device,
            batch_size: int) -> np.ndarray:
    """Predictions for (N,S,S) uint8 frames: (N,) class ids or (N,S,S) bool masks (numpy)."""
    model.eval()
    dtype = autocast_dtype(device)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out.append(head.predict(model, batch).cpu())
    return torch.cat(out).numpy()


def steps_per_epoch(n_train: int, batch: int, epochs: int, min_steps: int = 0) -> int:
    """Optimiser steps in one epoch: one pass over ``n_train`` frames in batches of ``batch``
    (the ragged last batch dropped), or more when ``epochs`` such passes would give fewer than
    ``min_steps`` steps in all (a small training split: the quick profile, 10% of the labels)."""
    per_pass = max(1, n_train // batch)
    return max(per_pass, math.ceil(min_steps / max(1, epochs)))


def _epoch_order(n_train: int, steps: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Training indices for one epoch of ``steps`` batches: one shuffle of ``n_train``, followed
    by further shuffles when the epoch needs more frames than one pass holds."""
    need = steps * min(batch, n_train)
    orders = [torch.randperm(n_train, generator=generator)]
    while sum(len(o) for o in orders) < need:
        orders.append(torch.randperm(n_train, generator=generator))
    return torch.cat(orders)


def train_and_select(model: nn.Module, optimizer: torch.optim.Optimizer, n_train: int, batch: int, epochs: int,
                     step_loss, lr_fn, val_scores, selection: str, generator: torch.Generator,
                     progress=None, min_steps: int = 0) -> FitResult:
    """The epoch loop shared by every protocol: shuffled batches of ``batch`` training indices
    (the ragged last batch dropped, for BatchNorm), ``step_loss(index) -> loss``, the rate
    ``lr_fn(step, total)``; after each epoch ``val_scores(model)`` and the best epoch by
    ``selection`` kept (ties keep the earliest) and restored. ``min_steps``: a floor on the
    optimiser steps in all (see ``steps_per_epoch``); the number of epochs, hence of
    validations, stays ``epochs``."""
    per_epoch = steps_per_epoch(n_train, batch, epochs, min_steps)
    step_batch = min(batch, n_train)
    total, step = epochs * per_epoch, 0
    best, best_state, best_epoch, history = -math.inf, None, 0, []
    for epoch in range(1, epochs + 1):
        model.train()
        order = _epoch_order(n_train, per_epoch, batch, generator)
        losses = []
        for i in range(per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = lr_fn(step, total)
            loss = step_loss(order[i * step_batch:(i + 1) * step_batch])
            if not torch.isfinite(loss.detach()):  # the cell fails with this reason; the sweep goes on
                raise NonFiniteLossError(f"fine-tuning loss is {float(loss.detach())} at epoch {epoch}, step {step + 1} "
                                         f"of {total}; the cell is not scored")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
        scores = val_scores(model)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **{f"val_{k}": v for k, v in scores.items()}})
        if best_state is None or scores[selection] > best:  # ties keep the earliest epoch
            best, best_state = scores[selection], copy.deepcopy(model.state_dict())
            best_epoch = epoch
        if progress is not None:
            progress(epoch, history[-1])
    model.load_state_dict(best_state)
    return FitResult(model, best_epoch, history)


def fit(head: Head, backbone: Backbone, train: Split, val: Split, epochs: int,
        device: torch.device, seed: int, progress=None) -> FitResult:
    """Fine-tune on ``train``; keep the epoch whose ``val`` selection metric is best.

    The selection metric is macro F1 (classification) or Dice (segmentation).
    """
    if not len(train) or not len(val):
        raise ValueError(f"need non-empty training and validation splits, got {len(train)} and {len(val)}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = head.build(backbone).to(device)
    if prefers_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    optimizer = head.optimizer(model)
    batch = head.profile.batch_size
    dtype = autocast_dtype(device)

    def step_loss(index: torch.Tensor) -> torch.Tensor:
        images, targets = _flip(train.images[index], train.targets[index], generator, head.kind == "segmentation")
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return head.loss(model, images.to(device), targets.to(device))

    def val_scores(m: nn.Module) -> dict[str, float]:
        return head.metrics(predict(head, m, val.images, device, batch), val.targets.numpy())

    return train_and_select(model, optimizer, len(train), batch, epochs, step_loss, head.lr, val_scores,
                            SELECTION_METRIC[head.kind], generator, progress, head.profile.min_steps)
