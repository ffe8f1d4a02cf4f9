"""Downstream models assembled around a torchvision ResNet body.

- ``Classifier``: ResNet (only the last ``trainable_stages`` trained) + linear head.
- ``FPNSegmenter``: ResNet + FPN + a light semantic head (sum of upsampled pyramid levels,
  1x1 reduction, two convolutions), one foreground logit per pixel: the CPU-budget head.
- ``build_maskrcnn``: torchvision Mask R-CNN on ResNet + FPN (the paper's protocol).
Frames enter as uint8 (B, S, S) grayscale; ``to_input`` replicates them to three channels
and applies the ImageNet normalisation every torchvision/timm ResNet expects.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor

from pretrain.fpn_pool import single_conv

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("layer4", "layer3", "layer2", "layer1", "conv1")  # last stage first


def to_input(images: torch.Tensor) -> torch.Tensor:
    """(B, S, S) uint8 -> (B, 3, S, S) float32, ImageNet-normalised."""
    x = images.float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def freeze_stages(resnet: nn.Module, trainable_stages: int) -> list[str]:
    """Freeze all but the last ``trainable_stages`` of (conv1+bn1, layer1..layer4).

    Returns the names of the frozen modules (kept in eval mode by ``Classifier.train``).
    """
    frozen = list(STAGES[trainable_stages:])
    for name in frozen:
        modules = [resnet.conv1, resnet.bn1] if name == "conv1" else [getattr(resnet, name)]
        for module in modules:
            module.requires_grad_(False)
    return frozen


class Classifier(nn.Module):
    """ResNet body + global average pool + linear head; ``forward`` (B,S,S) uint8 -> (B,C) logits."""

    def __init__(self, resnet: nn.Module, num_classes: int, trainable_stages: int = 3):
        super().__init__()
        resnet.fc = nn.Linear(resnet.fc.in_features, num_classes)
        self.resnet = resnet
        self.frozen = freeze_stages(resnet, trainable_stages)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:  # frozen stages keep their BatchNorm statistics
            for module in ([self.resnet.bn1] if name == "conv1" else [getattr(self.resnet, name)]):
                module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.resnet(to_input(images))


def load_fpn(fpn_module: nn.Module, fpn: dict[str, torch.Tensor] | None) -> None:
    """Copy a torchvision ``FeaturePyramidNetwork`` state (strict: keys and shapes must match)."""
    if fpn is None:
        return
    own = fpn_module.state_dict()
    bad = [k for k in own if k in fpn and tuple(fpn[k].shape) != tuple(own[k].shape)]
    if set(own) != set(fpn) or bad:
        raise ValueError(f"FPN state does not fit this FPN: keys differ by "
                         f"{sorted(set(own) ^ set(fpn))[:4]}, shapes differ for {bad[:4]}")
    fpn_module.load_state_dict({k: v.to(own[k].dtype) for k, v in fpn.items()}, strict=True)


class FPNSegmenter(nn.Module):
    """ResNet + FPN + light semantic head; ``forward`` (B,S,S) uint8 -> (B,S,S) foreground logits.

    ``features`` (B,S,S) uint8 -> (B, fpn_channels, S/4, S/4): the sum of the FPN levels
    upsampled to stride 4; ``decode`` maps it to logits through a 1x1 reduction to
    ``head_channels`` and two convolutions (the reduction keeps a 256-channel pre-trained FPN
    cheap on CPUs). ``fpn`` (torchvision FPN keys) is loaded into the pyramid when given, else it
    keeps torchvision's default initialisation. ``frozen``: backbone and FPN are not trained (and
    keep their BatchNorm statistics); only the reduction and the head learn.
    """

    def __init__(self, resnet: nn.Module, trainable_layers: int = 5, fpn_channels: int = 256,
                 head_channels: int = 64, fpn: dict[str, torch.Tensor] | None = None, frozen: bool = False):
        super().__init__()
        if trainable_layers < 5:
            freeze_stages(resnet, trainable_layers)
        widths = [resnet.fc.in_features // 8 * 2 ** i for i in range(4)]  # layer1..layer4 outputs
        self.body = BackboneWithFPN(resnet, {f"layer{i}": str(i - 1) for i in range(1, 5)}, widths, fpn_channels)
        load_fpn(self.body.fpn, fpn)
        self.frozen = frozen
        if frozen:
            self.body.requires_grad_(False)
        # normalised at once: the sum of four 256-channel levels is far larger than the narrow
        # pyramid's, and SGD at the head's learning rate collapsed to empty masks without it
        self.reduce = nn.Sequential(nn.Conv2d(fpn_channels, head_channels, 1), nn.GroupNorm(8, head_channels),
                                    nn.ReLU(inplace=True))
        self.head = nn.Sequential(
            nn.Conv2d(head_channels, head_channels, 3, padding=1), nn.GroupNorm(8, head_channels),
            nn.ReLU(inplace=True), nn.Conv2d(head_channels, 1, 1),
        )

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.body.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        features = self.body(to_input(images))
        levels = [v for k, v in features.items() if k != "pool"]
        size = levels[0].shape[-2:]  # stride 4
        return sum(F.interpolate(v, size=size, mode="bilinear", align_corners=False) for v in levels)

    def decode(self, fused: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, fpn_channels, h, w) -> (B, *size) logits."""
        logits = self.head(self.reduce(fused))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, S, S) uint8 -> (B, S, S) logits: ``decode(features(images))``, computed with the
        1x1 reduction moved in front of the pyramid's sum (see ``_reduced_levels``)."""
        reduced = self._reduced_levels(images)
        if reduced is None:  # an FPN whose blocks are not plain convolutions
            return self.decode(self.features(images), tuple(images.shape[-2:]))
        logits = self.head(self.reduce[1:](reduced))
        return F.interpolate(logits, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]

    def _reduced_levels(self, images: torch.Tensor) -> torch.Tensor | None:
        """``reduce[0](features(images))`` (B, head_channels, S/4, S/4) without the 256-channel
        output maps: the FPN's 3x3 output convolutions, the bilinear upsampling and the sum are
        linear, so the 1x1 reduction R goes through them, onto each level's kernel
        (R W_l, R b_l; its own bias once). Each output convolution then makes 64 channels
        instead of 256: the same function and gradients up to float rounding, and about half
        a fine-tuning step's operations fewer (tests/evaluate/test_models.py checks both).
        None when a block is not a plain convolution (then ``features`` runs in full)."""
        fpn, reduce = self.body.fpn, single_conv(self.reduce[0], 1)
        convs = [single_conv(block, 3) for block in fpn.layer_blocks]
        laterals = [single_conv(block, 1) for block in fpn.inner_blocks]
        if reduce is None or None in convs or None in laterals:
            return None
        r = reduce.weight.flatten(1)                                       # (H, C)
        feats = list(self.body.body(to_input(images)).values())            # finest first
        size = feats[0].shape[-2:]                                         # stride 4
        inner, total = None, None
        for idx in range(len(feats) - 1, -1, -1):
            lateral = fpn.inner_blocks[idx](feats[idx])
            inner = lateral if inner is None else lateral + F.interpolate(inner, size=lateral.shape[-2:],
                                                                          mode="nearest")
            conv = convs[idx]
            weight = (r @ conv.weight.flatten(1)).view(r.shape[0], *conv.weight.shape[1:])
            bias = None if conv.bias is None else r @ conv.bias
            level = F.interpolate(F.conv2d(inner, weight, bias, padding=1), size=size, mode="bilinear",
                                  align_corners=False)
            total = level if total is None else total + level
        return total if reduce.bias is None else total + reduce.bias.view(1, -1, 1, 1)


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice; logits (B,S,S) float, masks (B,S,S) {0,1}. Returns a scalar."""
    target = masks.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2)) + target.sum((1, 2)) + 1)
    return bce + dice.mean()


def build_maskrcnn(resnet: nn.Module, resolution: int, trainable_layers: int = 5,
                   fpn: dict[str, torch.Tensor] | None = None) -> MaskRCNN:
    """torchvision Mask R-CNN (2 classes: background, lesion/wall) on ResNet + FPN.

    Inputs are kept at ``resolution`` (min_size = max_size) and normalised like ``to_input``.
    ``fpn`` (256-channel torchvision FPN keys, e.g. our pre-trained one) replaces the new FPN.
    """
    body = _resnet_fpn_extractor(resnet, trainable_layers, norm_layer=None)
    load_fpn(body.fpn, fpn)
    return MaskRCNN(body, num_classes=2, min_size=resolution, max_size=resolution,
                    image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))


def maskrcnn_inputs(images: torch.Tensor) -> list[torch.Tensor]:
    """(B, S, S) uint8 -> list of (3, S, S) float in [0, 1] (Mask R-CNN normalises itself)."""
    return list(images.float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1))


def maskrcnn_targets(masks: torch.Tensor, min_pixels: int = 4) -> list[dict[str, torch.Tensor]]:
    """(B, S, S) binary masks -> Mask R-CNN targets, one instance per connected component."""
    from scipy import ndimage

    targets = []
    for mask in masks.cpu().numpy():
        components, count = ndimage.label(mask > 0)
        instances = [components == i for i in range(1, count + 1)]
        instances = [m for m in instances if m.sum() >= min_pixels]
        boxes = []
        for m in instances:
            ys, xs = m.nonzero()
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        size = mask.shape
        targets.append({
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4).to(masks.device),
            "labels": torch.ones(len(instances), dtype=torch.int64, device=masks.device),
            "masks": torch.from_numpy(np.stack(instances) if instances else
                                      np.zeros((0, *size), dtype=bool)).to(masks.device, torch.uint8),
        })
    return targets


def maskrcnn_to_masks(outputs: list[dict], size: tuple[int, int], score: float = 0.5) -> torch.Tensor:
    """Mask R-CNN detections -> (B, S, S) bool: union of instances scoring >= ``score``, prob > 0.5."""
    result = []
    for out in outputs:
        keep = out["scores"] >= score
        masks = out["masks"][keep, 0] > 0.5
        result.append(masks.any(0) if len(masks) else torch.zeros(size, dtype=torch.bool,
                                                                  device=out["scores"].device))
    return torch.stack(result)
