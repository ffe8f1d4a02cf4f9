"""Test helpers other packages may use: a random-weight adaptation folder and synthetic pairs.

``make_random_adapt_dir(path, seed)`` writes a valid ``tiny`` LP-SAM adaptation folder with
random weights in well under a second, so ``load_predictor`` works in tests without training.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from maskgen.lpsam.artifacts import save_adapt_dir
from maskgen.lpsam.config import LPSAMConfig, get_config
from maskgen.lpsam.data import AnatomyClass, PairSet, make_pairset
from maskgen.lpsam.model import build_lpsam

# A very small model at 64x64 for fast unit tests of training and resuming.
MICRO = LPSAMConfig(
    "micro", input_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, window_size=4,
    global_attn_indexes=(1,), prompt_dim=32, decoder_mlp_dim=64, decoder_heads=2, conv_channels=16,
    lpe_cnn_channels=(8, 16, 16), lpe_mlp_dim=64, lpe_heads=2, sam_variant=None,
)

DEFAULT_CLASSES = (
    AnatomyClass("camus", 1, "lv_endocardium"), AnatomyClass("camus", 2, "myocardium"),
    AnatomyClass("camus", 3, "left_atrium"), AnatomyClass("ddti", 1, "nodule"), AnatomyClass("tg3k", 1, "gland"),
)


def make_random_adapt_dir(path: str | os.PathLike, seed: int = 0,
                          classes: tuple[AnatomyClass, ...] = DEFAULT_CLASSES,
                          config: LPSAMConfig | None = None) -> Path:
    """Write a ``tiny`` LP-SAM with random weights (seeded) to ``path``; returns ``path``.

    ``config`` defaults to ``tiny`` without its detail branch: the random weights (and so the
    masks of the random-weight stores that tests elsewhere are written against) are then the
    ones they were before the branch existed. Pass ``get_config("tiny")`` for today's default.
    """
    torch.manual_seed(seed)
    config = config or replace(get_config("tiny"), detail_channels=0, detail_scale=1)
    model = build_lpsam(config, len(classes))
    with torch.no_grad():  # a random decoder: make the zero-initialised parts non-trivial too
        for p in model.adapter.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_adapt_dir(path, model, list(classes), None, {"note": "random weights for tests"})
    return Path(path)


def synthetic_pairs(n_per_dataset: int = 24, size: int = 256, seed: int = 0,
                    held_out_fraction: float = 0.25) -> PairSet:
    """Speckled frames with bright/dark ellipses as anatomy, for two toy datasets:
    ``heart`` (labels 1 cavity, 2 wall ring) and ``thyroid`` (label 1 nodule)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks, ds, held = [], [], [], []
    for d in range(2):
        for i in range(n_per_dataset):
            img = rng.gamma(2.0, 20.0, (size, size))
            lab = np.zeros((size, size), np.uint8)
            cy, cx = rng.uniform(0.35, 0.65, 2) * size
            ry, rx = rng.uniform(0.12, 0.22, 2) * size
            r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            if d == 0:
                lab[r <= 1.6] = 2
                lab[r <= 1] = 1
                img[lab == 2] += 110
            else:
                lab[r <= 1] = 1
                img[lab == 1] += 90
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            masks.append(lab)
            ds.append(d)
            held.append(i < held_out_fraction * n_per_dataset)
    classes = [AnatomyClass("heart", 1, "cavity"), AnatomyClass("heart", 2, "wall"),
               AnatomyClass("thyroid", 1, "nodule")]
    ids = [f"synthetic/{k}" for k in range(len(images))]
    return make_pairset(np.stack(images), np.stack(masks), np.asarray(ds), np.asarray(held),
                        ["heart", "thyroid"], classes, ids)
