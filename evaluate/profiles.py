"""Budgets of a sweep: ``quick`` (CPU minutes, phantom) and ``full`` (the paper's protocol).

Every hyperparameter of fine-tuning lives in one frozen ``Profile``; the CLI converts its
options into one with ``build_profile`` and nothing downstream reads the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# the protocols a sweep can run (evaluate.protocols implements them; named here, where a profile
# checks its own, so that importing either module first works)
PROTOCOLS = ("finetune", "linear", "frozen", "low-label")


@dataclass(frozen=True)
class Profile:
    """How each (task, fold, method, seed) cell is fine-tuned and evaluated.

    Attributes:
        name: ``quick`` or ``full`` (or a custom label).
        resolution: side of the letter-boxed square input, pixels.
        max_frames: frames kept per task (random subset, fixed seed); 0 keeps all.
        cls_epochs / seg_epochs: fine-tuning epochs (the best one on validation is kept).
        min_steps: a floor on the optimiser steps of fine-tuning (``finetune`` and ``low-label``):
            an epoch of a small training split takes more steps (reshuffled passes) so that the
            epochs add up to at least this many; the epochs, hence validations, keep their number.
            0: one pass per epoch (the paper's protocol).
        batch_size: frames per step.
        cls_lr: Adam learning rate for classification (paper: 0.01).
        cls_trainable_stages: trailing ResNet stages fine-tuned for classification (paper: 3).
        seg_head: ``maskrcnn`` (torchvision Mask R-CNN on ResNet + FPN, the paper's) or ``fpn``
            (a light semantic FPN head for CPU budgets).
        seg_lr / seg_momentum / seg_weight_decay: SGD for segmentation (paper: wd 1e-4).
        seg_trainable_layers: ResNet stages trained for segmentation (5 = all).
        val_fraction: share of the training folds' groups held out for epoch selection.
        overlay_frames: test frames of fold 0 kept for the qualitative overlays.
        seg_fpn_channels / seg_head_channels: width of the light head's FPN (256, that of the
            pre-trained FPN and Mask R-CNN's; a backbone without an FPN gets a new one this wide)
            and of its head after a 1x1 reduction.
        protocols: which protocols the sweep runs (``PROTOCOLS``; ``evaluate.protocols`` runs them); a task runs
            those that apply to its kind.
        label_fraction: share of the training folds' groups kept by the ``low-label`` protocol.
        linear_epochs / linear_lr / linear_weight_decay: the linear probe's full-batch Adam on
            frozen, standardised features (the best epoch on validation is kept).
        frozen_epochs: epochs of the head in frozen-backbone segmentation (cached features).
        pretrain_args: extra ``pretrain run`` options used when ``--ablations`` trains backbones.
    """

    name: str
    resolution: int
    max_frames: int
    cls_epochs: int
    seg_epochs: int
    batch_size: int
    min_steps: int = 0
    cls_lr: float = 0.01
    cls_trainable_stages: int = 3
    seg_head: str = "maskrcnn"
    seg_lr: float = 0.02
    seg_momentum: float = 0.9
    seg_weight_decay: float = 1e-4
    seg_trainable_layers: int = 5
    val_fraction: float = 0.2
    overlay_frames: int = 3
    seg_fpn_channels: int = 256
    seg_head_channels: int = 64
    protocols: tuple[str, ...] = ("finetune", "linear", "frozen", "low-label")
    label_fraction: float = 0.1
    linear_epochs: int = 100
    linear_lr: float = 0.01
    linear_weight_decay: float = 1e-4
    frozen_epochs: int = 30
    pretrain_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.resolution < 32 or self.resolution % 32:
            raise ValueError(f"resolution {self.resolution} must be a multiple of 32, >= 32")
        if self.seg_head not in SEG_HEADS:
            raise ValueError(f"segmentation head {self.seg_head!r} is not one of {SEG_HEADS}")
        if not 1 <= self.cls_trainable_stages <= 5 or not 0 <= self.seg_trainable_layers <= 5:
            raise ValueError("trainable stages must lie in 1..5 (classification), 0..5 (segmentation)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction {self.val_fraction} must lie strictly between 0 and 1")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols:
            raise ValueError(f"protocols {list(self.protocols)}: choose from {', '.join(PROTOCOLS)}")
        if self.seg_head_channels % 8:
            raise ValueError(f"seg_head_channels {self.seg_head_channels} must be a multiple of 8 (GroupNorm)")
        if not 0.0 < self.label_fraction < 1.0:
            raise ValueError(f"label_fraction {self.label_fraction} must lie strictly between 0 and 1")
        for field in ("max_frames", "min_steps", "cls_epochs", "seg_epochs", "batch_size", "overlay_frames",
                      "linear_epochs", "frozen_epochs", "seg_fpn_channels", "seg_head_channels"):
            value = getattr(self, field)
            if value < 0 or (value == 0 and field not in ("max_frames", "min_steps", "overlay_frames")):
                raise ValueError(f"{field} = {value} is out of range")

    def protocol(self) -> dict:
        """The fields that change results (a finished cell is reused only if these match)."""
        fields = dataclasses.asdict(self)
        for name in ("name", "pretrain_args", "protocols"):  # which cells run, not how
            fields.pop(name)
        return fields


SEG_HEADS = ("maskrcnn", "fpn")

QUICK_PRETRAIN = ("--epochs", "4", "--batch-size", "16", "--resolution", "96", "--warmup-epochs", "1")  # as make demo
# the study's longer pre-training (scripts/study.sh's budget, without its probe options, which
# name the demo's folders); the pre-training side owns this budget
STUDY_PRETRAIN = ("--epochs", "30", "--batch-size", "16", "--resolution", "96", "--warmup-epochs", "2")

# 2 CPU cores (2 workers x 1 thread), six phantom tasks, five methods (random + anaus + three
# controls), five folds, four protocols: about an hour (the demo measured 150 frozen + linear cells
# in 3.5 min and 50 busi-seg fine-tuning + 10%-label cells in 9 min). Fewer frames and epochs than before the protocols and the 256-channel
# pre-trained FPN (which doubles a segmentation step's cost) were added. Adam at the paper's 0.01 diverges in so few steps:
# 0.001 (the full profile keeps 0.01). At least 60 optimiser steps per fine-tuning: one pass per
# epoch of 26 training frames at batch 8 is 18 steps in 6 epochs, after which no pixel of any
# method's prediction had crossed the threshold (Dice 0.0 on every fold, busi-seg, random); with
# 60 steps busi-seg reached Dice 0.34-0.70 per fold (mean 0.48), with 120 steps 0.41-0.63 (0.50).
QUICK = Profile(
    name="quick", resolution=96, max_frames=50, cls_epochs=6, seg_epochs=6, batch_size=8, min_steps=60,
    cls_lr=0.001, seg_head="fpn", seg_lr=0.05, overlay_frames=3, pretrain_args=QUICK_PRETRAIN,
)

PROFILES: dict[str, Profile] = {
    "quick": QUICK,
    # quick's downstream protocol on twice the frames, a 240-step fine-tuning floor (at 60 steps
    # fine-tuning measured how fast an initialisation starts to segment: at 240 the order of the
    # initialisations turned, README), and a 7.5x longer pre-training for --ablations (scripts/study.sh)
    "study": dataclasses.replace(QUICK, name="study", max_frames=100, min_steps=240,
                                 pretrain_args=STUDY_PRETRAIN),
    # The paper's protocol: 224 px, 30 epochs, Mask R-CNN, every frame.
    "full": Profile(
        name="full", resolution=224, max_frames=0, cls_epochs=30, seg_epochs=30, batch_size=32,
        seg_head="maskrcnn", seg_lr=0.02,
    ),
}


def build_profile(name: str, **overrides) -> Profile:
    """The named profile with ``overrides`` (None values ignored) applied.

    Raises:
        ValueError: unknown profile name or an out-of-range override.
    """
    if name not in PROFILES:
        raise ValueError(f"profile {name!r} is not one of {sorted(PROFILES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PROFILES[name], **changes)
