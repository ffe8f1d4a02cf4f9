"""What a sweep costs: per-frame training and prediction time of each downstream head.

Measures, on synthetic frames (no dataset needed), seconds per frame for one training step
and for prediction, for the classifier, the light FPN segmentation head and the paper's Mask
R-CNN (the baseline the light head is compared with: the ratio is printed), then projects a
sweep: per cell, epochs x (64% of the frames trained + 16% validated) + 20% tested.

    .venv/bin/python benchmarks/bench_evaluate.py                 # quick profile on CPU
    .venv/bin/python benchmarks/bench_evaluate.py --profile full  # the paper's protocol (GPU)
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import torch

from evaluate.backbones import random_backbone
from evaluate.models import segmentation_loss
from evaluate.profiles import PROFILES
from evaluate.train import make_head
from maskgen.common.devices import autocast_dtype, resolve_device, timed

# frames per task in the public datasets (hmcqu: 109 videos x one cycle, about 22 frames, assumed)
FULL_SIZES = {"pocus-cls": 2116, "busi-cls": 780, "udiat-seg": 163, "tn3k-seg": 3493,
              "busi-seg": 647, "hmcqu-seg": 2400}


def per_frame_costs(kind: str, profile, device, steps: int = 4) -> tuple[float, float]:
    """(seconds per frame of a training step, seconds per frame of prediction), after warm-up."""
    torch.manual_seed(0)
    b, s = profile.batch_size, profile.resolution
    images = torch.randint(0, 255, (b, s, s), dtype=torch.uint8, device=device)
    masks = torch.zeros(b, s, s, dtype=torch.uint8, device=device)
    masks[:, s // 4: s // 2, s // 3: 2 * s // 3] = 1
    targets = torch.randint(0, 3, (b,), device=device) if kind == "classification" else masks
    head = make_head(kind, profile, 3)
    model = head.build(random_backbone()).to(device)
    optimizer = head.optimizer(model)
    dtype = autocast_dtype(device)

    def train_step():
        model.train()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = head.loss(model, images, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict_step():
        model.eval()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            head.predict(model, images)

    return timed(train_step, device, steps) / b, timed(predict_step, device, steps) / b


def light_head_step_ratios(profile, device, steps: int = 6) -> dict[str, float]:
    """Seconds of one light-head fine-tuning step (batch of the profile) for: the full 256-channel
    maps then the 1x1 reduction (``decode(features(x))``, the former forward), the reduction folded
    through the FPN (``forward``), and folded + channels-last; measured in this process, one after
    the other, from the same weights."""
    torch.manual_seed(0)
    b, s = profile.batch_size, profile.resolution
    images = torch.randint(0, 255, (b, s, s), dtype=torch.uint8, device=device)
    masks = torch.zeros(b, s, s, dtype=torch.uint8, device=device)
    masks[:, s // 4: s // 2, s // 3: 2 * s // 3] = 1
    head = make_head("segmentation", dataclasses.replace(profile, seg_head="fpn"))
    out = {}
    for name in ("full maps", "folded", "folded + channels-last"):
        model = head.build(random_backbone()).to(device)
        if name.endswith("channels-last"):
            model = model.to(memory_format=torch.channels_last)
        forward = (lambda x, m=model: m.decode(m.features(x), tuple(x.shape[-2:]))) if name == "full maps" else model
        optimizer = head.optimizer(model)

        def train_step(model=model, forward=forward, optimizer=optimizer):
            model.train()
            loss = segmentation_loss(forward(images), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        out[name] = timed(train_step, device, steps)
    return out


def cell_seconds(n: int, epochs: int, train: float, pred: float) -> float:
    return epochs * (0.64 * n * train + 0.16 * n * pred) + 0.2 * n * pred


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--methods", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = PROFILES[args.profile]
    device = resolve_device("auto") if args.profile == "full" else torch.device("cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"profile {profile.name}: {profile.resolution} px, batch {profile.batch_size}, device {name}")
    costs = {"classification": per_frame_costs("classification", profile, device)}
    for head in ("fpn", "maskrcnn"):
        costs[head] = per_frame_costs("segmentation", dataclasses.replace(profile, seg_head=head), device)
    for key, (train, pred) in costs.items():
        print(f"  {key:15s} train {1e3 * train:8.2f} ms/frame   predict {1e3 * pred:8.2f} ms/frame")
    print(f"  Mask R-CNN / light FPN training cost ratio: {costs['maskrcnn'][0] / costs['fpn'][0]:.2f}")
    steps = light_head_step_ratios(profile, device)
    base = steps["full maps"]
    print("  light head, one training step: " + ", ".join(
        f"{k} {1e3 * v:.0f} ms (x{base / v:.2f})" for k, v in steps.items()))
    total = 0.0
    for task, n in FULL_SIZES.items():
        n = min(n, profile.max_frames) if profile.max_frames else n
        kind = "classification" if task.endswith("cls") else profile.seg_head
        epochs = profile.cls_epochs if task.endswith("cls") else profile.seg_epochs
        seconds = 5 * cell_seconds(n, epochs, *costs[kind])
        total += seconds * args.methods
        print(f"  {task:10s} {n:5d} frames: {seconds / 60:7.1f} min per method (5 folds, {epochs} epochs)")
    print(f"projected sweep, {args.methods} methods x 6 tasks x 5 folds: {total / 60:.1f} min "
          f"({total / 3600:.2f} h), loading excluded")


if __name__ == "__main__":
    main()
