"""Checks that the phantom is realistic and not trivial: speckle SNR, Otsu-vs-truth Dice.

Fully developed speckle has a Rayleigh envelope whose mean/std is sqrt(pi / (4 - pi)) = 1.913.
A global intensity threshold (Otsu) should not recover the anatomy: its Dice with each
anatomy class stays low because speckle, texture, shadows and gain vary inside and across
structures.
"""

from __future__ import annotations

import numpy as np

from maskgen.phantom.fields import TissueFields
from maskgen.phantom.geometry import BeamGrid, Probe
from maskgen.phantom.render import Imaging, Tissue, beam_envelope, paint_properties

RAYLEIGH_SNR = float(np.sqrt(np.pi / (4 - np.pi)))


def speckle_snr(seed: int = 0, size: int = 256, kind: str = "linear") -> float:
    """Envelope mean/std in homogeneous tissue (no texture), central region of the beam image."""
    rng = np.random.default_rng(seed)
    probe = Probe(kind, size, size, span=1.0 if kind == "linear" else 0.6,
                  apex_radius=0.0 if kind == "linear" else size * 0.4)
    grid = BeamGrid(probe)
    fields = TissueFields(rng, size, size, margin=8)
    scatter, blob, streak = fields.sample(grid.x, grid.y)
    maps = paint_properties([], grid, Tissue(echo=1.0, texture=0.0))
    env = beam_envelope(maps, scatter, blob, streak, grid, Imaging())
    d, n = env.shape
    core = env[d // 8: -d // 8, n // 8: -n // 8]
    return float(core.mean() / core.std())


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (maximises the between-class variance)."""
    hist = np.bincount(values.ravel().astype(np.int64), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(np.argmax(between))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def otsu_dice(image: np.ndarray, truth: np.ndarray, fov: np.ndarray) -> float:
    """Best Dice of Otsu's bright or dark class (inside the field of view) with ``truth``."""
    thr = otsu_threshold(image[fov])
    bright = (image > thr) & fov
    dark = (image <= thr) & fov
    return max(dice(bright, truth), dice(dark, truth))
