"""Downstream labels follow the anatomy the way the sonographic criteria say (in distribution)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from maskgen.phantom.lung import lung_scene
from maskgen.phantom.render import render_mask
from maskgen.phantom.softtissue import breast_scene


def _lesion_features(scene) -> tuple[float, float, float]:
    """(solidity, height / width, posterior / lateral brightness) of the lesion of a scene."""
    image, st = scene.frame()
    mask = render_mask([s for s in st if s.role == "lesion"], scene.grid, {"lesion": 1}).astype(bool)
    ys, xs = np.nonzero(mask)
    solidity = mask.sum() / ConvexHull(np.c_[xs, ys]).volume
    height, width = np.ptp(ys) + 1, np.ptp(xs) + 1
    below = image[ys.max() + 3: ys.max() + 3 + height, xs.min(): xs.max() + 1]
    side = image[ys.max() + 3: ys.max() + 3 + height, : max(xs.min() - 5, 1)]
    return solidity, height / width, (below.mean() + 1) / (side.mean() + 1)


def test_malignant_breast_lesions_are_irregular_tall_and_shadowing():
    rng = np.random.default_rng(21)
    feats = {k: np.array([_lesion_features(breast_scene(rng, 256, 288, k)) for _ in range(16)])
             for k in ("benign", "malignant")}
    benign, malignant = feats["benign"].mean(0), feats["malignant"].mean(0)
    assert malignant[0] < benign[0]  # less solid: irregular / spiculated margin
    assert malignant[1] > benign[1]  # taller than wide more often
    assert malignant[2] < benign[2]  # posterior shadowing vs enhancement
    # ... but not deterministically: the classes overlap on each criterion
    assert feats["malignant"][:, 1].min() < feats["benign"][:, 1].max()


def test_normal_breast_has_no_lesion():
    scene = breast_scene(np.random.default_rng(2), 200, 240, "normal")
    assert not scene.mask(scene.frame()[1], {"lesion": 1}).any()


def test_lung_patterns_have_their_signs():
    rng = np.random.default_rng(8)
    roles = {p: [{s.role for s in lung_scene(rng, 200, 220, p).layout(0.0)} for _ in range(6)]
             for p in ("regular", "pneumonia", "covid19")}
    assert all("consolidation" in r for r in roles["pneumonia"])
    assert not any("consolidation" in r for r in roles["regular"])
    assert all("pleura" in r for rs in roles.values() for r in rs)
