"""Protocols beside full fine-tuning: linear probe, frozen-backbone segmentation, few labels.

- ``finetune``: the whole model is fine-tuned on the training folds (``evaluate.train.fit``).
- ``linear`` (classification): the backbone is frozen; its global-average-pooled layer4
  features are computed once per frame, standardised with the training frames' statistics,
  and a linear (multinomial logistic-regression) head is trained on them (full-batch Adam).
- ``frozen`` (segmentation): backbone + FPN frozen; their fused stride-4 features are computed
  once, and only the light head (1x1 reduction + two convolutions) is trained on them.
- ``low-label``: fine-tuning on ``label_fraction`` of the training folds' groups (drawn with
  ``maskgen.datasets.folds.grouped_split``, stratified for classification, a function of fold and
  seed), validated and tested on the same frames as ``finetune``.

Every protocol keeps the epoch that scores best on the validation split; the test fold is
scored once, after selection.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evaluate.backbones import Backbone
from evaluate.metrics import SELECTION_METRIC
from evaluate.models import FPNSegmenter, segmentation_loss, to_input
from evaluate.profiles import PROTOCOLS, Profile
from evaluate.train import FitResult, Split, make_head, train_and_select

KINDS = {"finetune": ("classification", "segmentation"), "linear": ("classification",),
         "frozen": ("segmentation",), "low-label": ("classification", "segmentation")}
TITLES = {"finetune": "Fine-tuning", "linear": "Linear probe (frozen backbone)",
          "frozen": "Frozen-backbone segmentation (backbone + FPN frozen, light head trained)",
          "low-label": "Label efficiency"}


def applies(protocol: str, kind: str) -> bool:
    """Whether ``protocol`` runs on a task of ``kind``."""
    return kind in KINDS[protocol]


def parse_protocols(text: str) -> tuple[str, ...]:
    """Comma list -> protocol names. Raises ValueError naming an unknown one."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ValueError(f"--protocols {text!r}: choose from {', '.join(PROTOCOLS)}")
    return names


def label_subset(groups: np.ndarray, labels: np.ndarray | None, train_idx: np.ndarray, fraction: float,
                 seed: int) -> np.ndarray:
    """About ``fraction`` of the training frames, whole groups only (stratified when labelled).

    Deterministic in (``train_idx``, ``seed``); at least two frames are kept (BatchNorm).
    """
    from maskgen.datasets.folds import grouped_split

    keep = np.asarray(grouped_split(list(groups[train_idx]), fraction, seed=seed,
                                    labels=None if labels is None else labels[train_idx]), dtype=bool)
    subset = train_idx[keep]
    if len(subset) < 2:
        extra = [i for i in train_idx if i not in set(subset)][: 2 - len(subset)]
        subset = np.sort(np.concatenate([subset, np.asarray(extra, dtype=train_idx.dtype)]))
    return subset


@torch.no_grad()
def _encode(fn, images: torch.Tensor, device: torch.device, batch: int) -> torch.Tensor:
    """Apply a frozen feature function batch by batch; (N, S, S) uint8 -> (N, ...) float32 on CPU."""
    return torch.cat([fn(images[i:i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])


def fit_on_features(model: nn.Module, loss_fn, predict_fn, metrics_fn, selection: str,
                    train: Split, val: Split, epochs: int, batch: int | None, optimizer: torch.optim.Optimizer,
                    lr_fn, seed: int) -> FitResult:
    """Train ``model`` on cached features (``Split`` of features and targets) with the shared
    epoch loop; keep the best validation epoch. ``batch`` None: full batch."""
    generator = torch.Generator().manual_seed(seed)

    def step_loss(index: torch.Tensor) -> torch.Tensor:
        return loss_fn(model(train.images[index]), train.targets[index])

    @torch.no_grad()
    def val_scores(m: nn.Module) -> dict[str, float]:
        m.eval()
        return metrics_fn(predict_fn(m, val.images), val.targets.numpy())

    result = train_and_select(model, optimizer, len(train), batch or len(train), epochs, step_loss, lr_fn,
                              val_scores, selection, generator)
    model.eval()
    return result


def linear_probe(backbone: Backbone, profile: Profile, num_classes: int, train: Split, val: Split,
                 test: Split, device: torch.device, seed: int) -> tuple[np.ndarray, FitResult]:
    """Frozen backbone -> pooled layer4 features (computed once) -> logistic regression.

    Returns the test predictions (N,) and the fit (model = the linear head).
    """
    torch.manual_seed(seed)
    resnet = backbone.build()
    resnet.fc = nn.Identity()
    resnet = resnet.to(device).eval()
    feats = [_encode(lambda x: resnet(to_input(x)), s.images, device, profile.batch_size)
             for s in (train, val, test)]
    mean, std = feats[0].mean(0), feats[0].std(0).clamp_min(1e-6)
    feats = [(f - mean) / std for f in feats]
    head = make_head("classification", profile, num_classes)
    linear = nn.Linear(feats[0].shape[1], num_classes)
    optimizer = torch.optim.Adam(linear.parameters(), lr=profile.linear_lr,
                                 weight_decay=profile.linear_weight_decay)
    result = fit_on_features(
        linear, nn.functional.cross_entropy, lambda m, x: m(x).argmax(1), head.metrics,
        SELECTION_METRIC["classification"], Split(feats[0], train.targets), Split(feats[1], val.targets),
        profile.linear_epochs, None, optimizer, lambda step, total: profile.linear_lr, seed)
    with torch.no_grad():
        pred = result.model(feats[2]).argmax(1).numpy()
    return pred, result


def frozen_segmentation(backbone: Backbone, profile: Profile, train: Split, val: Split, test: Split,
                        device: torch.device, seed: int) -> tuple[np.ndarray, FitResult]:
    """Frozen backbone + FPN -> fused stride-4 features (computed once) -> light head trained.

    Returns the test masks (N, S, S) bool and the fit (model = the whole ``FPNSegmenter``).
    """
    torch.manual_seed(seed)
    head = make_head("segmentation", profile, frozen=True)
    model: FPNSegmenter = head.build(backbone, frozen=True).to(device)
    model.eval()
    size = tuple(train.images.shape[-2:])
    feats = [_encode(model.features, s.images, device, profile.batch_size) for s in (train, val, test)]
    model = model.cpu()
    decoder = _Decoder(model, size)
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=profile.seg_lr, momentum=profile.seg_momentum,
                                weight_decay=profile.seg_weight_decay)

    def predict_fn(m, x):
        return torch.cat([m(x[i:i + profile.batch_size]) > 0 for i in range(0, len(x), profile.batch_size)])

    result = fit_on_features(
        decoder, segmentation_loss, predict_fn, head.metrics, SELECTION_METRIC["segmentation"],
        Split(feats[0], train.targets), Split(feats[1], val.targets), profile.frozen_epochs,
        profile.batch_size, optimizer, head.lr, seed)
    with torch.no_grad():
        pred = predict_fn(result.model, feats[2]).numpy()
    return pred, FitResult(model, result.best_epoch, result.history)


class _Decoder(nn.Module):
    """The trainable part of a frozen ``FPNSegmenter``: fused features -> (B, S, S) logits."""

    def __init__(self, segmenter: FPNSegmenter, size: tuple[int, int]):
        super().__init__()
        self.reduce, self.head, self.size = segmenter.reduce, segmenter.head, size

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return FPNSegmenter.decode(self, fused, self.size)  # the segmenter's own decoding
