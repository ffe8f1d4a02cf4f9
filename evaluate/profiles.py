"""Budgets of a sweep: ``quick`` (CPU minutes, phantom) and ``full`` (the paper's protocol).

Every hyperparameter of fine-tuning lives in one frozen ``Profile``; the CLI converts its
options into one with ``build_profile`` and nothing downstream reads the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How each (task, fold, method, seed) cell is fine-tuned and evaluated.

    Attributes:
        name: ``quick`` or ``full`` (or a custom label).
        resolution: side of the letter-boxed square input, pixels.
        max_frames: frames kept per task (random subset, fixed seed); 0 keeps all.
        cls_epochs / seg_epochs: fine-tuning epochs (the best one on validation is kept).
        batch_size: frames per step.
        cls_lr: Adam learning rate for classification (paper: 0.01).
        cls_trainable_stages: trailing ResNet stages fine-tuned for classification (paper: 3).
        seg_head: ``maskrcnn`` (torchvision Mask R-CNN on ResNet + FPN, the paper's) or ``fpn``
            (a light semantic FPN head for CPU budgets).
        seg_lr / seg_momentum / seg_weight_decay: SGD for segmentation (paper: wd 1e-4).
        seg_trainable_layers: ResNet stages trained for segmentation (5 = all).
        val_fraction: share of the training folds' groups held out for epoch selection.
        overlay_frames: test frames of fold 0 kept for the qualitative overlays.
        pretrain_args: extra ``pretrain run`` options used when ``--ablations`` trains backbones.
    """

    name: str
    resolution: int
    max_frames: int
    cls_epochs: int
    seg_epochs: int
    batch_size: int
    cls_lr: float = 0.01
    cls_trainable_stages: int = 3
    seg_head: str = "maskrcnn"
    seg_lr: float = 0.02
    seg_momentum: float = 0.9
    seg_weight_decay: float = 1e-4
    seg_trainable_layers: int = 5
    val_fraction: float = 0.2
    overlay_frames: int = 3
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
        for field in ("max_frames", "cls_epochs", "seg_epochs", "batch_size", "overlay_frames"):
            value = getattr(self, field)
            if value < 0 or (value == 0 and field in ("cls_epochs", "seg_epochs", "batch_size")):
                raise ValueError(f"{field} = {value} is out of range")

    def protocol(self) -> dict:
        """The fields that change results (a finished cell is reused only if these match)."""
        fields = dataclasses.asdict(self)
        fields.pop("name")
        fields.pop("pretrain_args")
        return fields


SEG_HEADS = ("maskrcnn", "fpn")

PROFILES: dict[str, Profile] = {
    # 2 CPU cores, six phantom tasks, three methods, five folds: about 20 minutes.
    # Adam at the paper's 0.01 diverges in so few steps: 0.001 (the full profile keeps 0.01).
    "quick": Profile(
        name="quick", resolution=96, max_frames=100, cls_epochs=8, seg_epochs=12, batch_size=8,
        cls_lr=0.001, seg_head="fpn", seg_lr=0.05, overlay_frames=3,
        pretrain_args=("--epochs", "3", "--batch-size", "16", "--resolution", "96", "--warmup-epochs", "1"),
    ),
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
