"""The measures of scripts/heldout_by_thickness.py on shapes whose answer is known."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "heldout_by_thickness.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("heldout_by_thickness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ring(inner: float, outer: float, size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - size / 2
    r = np.hypot(yy, xx)
    return (r >= inner) & (r < outer)


@pytest.mark.parametrize("width", [6, 10, 16])
def test_thickness_of_a_ring_is_its_width(script, width):
    assert script.thickness(ring(30, 30 + width)) == pytest.approx(width, abs=1.5)


def test_thicker_ring_measures_thicker(script):
    assert script.thickness(ring(30, 38)) < script.thickness(ring(30, 42))


def test_edge_contrast_follows_the_outer_band_not_the_enclosed_region(script):
    rng = np.random.default_rng(0)
    wall, cavity = ring(30, 40), ring(0, 30)
    image = rng.normal(100, 5, wall.shape)
    image[cavity] = 0            # a dark enclosed cavity must not count as the outside
    faint, bright = image.copy(), image.copy()
    faint[wall] += 2
    bright[wall] += 20
    low = script.edge_cnr(faint, wall, cavity, ring=6)
    high = script.edge_cnr(bright, wall, cavity, ring=6)
    assert 0 < low < 1 < high
    assert high == pytest.approx(4, rel=0.25)    # 20 over a noise std of 5
