"""The measures of scripts/heldout_by_thickness.py on shapes whose answer is known."""

from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "heldout_by_thickness.py"


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


def test_error_overlay_colours_right_false_positive_and_false_negative_pixels(script):
    image = np.full((4, 4), 100, np.uint8)
    truth = np.zeros((4, 4), bool)
    truth[:2] = True                       # top half is the structure
    pred = np.zeros((4, 4), bool)
    pred[1:3] = True                       # the prediction is one row too low
    rgb = script.error_overlay(image, pred, truth)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[1, 0]) == (255, 255, 255)       # in both
    assert tuple(rgb[2, 0]) == (255, 60, 60)         # predicted, not true
    assert tuple(rgb[0, 0]) == (60, 120, 255)        # true, missed
    assert tuple(rgb[3, 0]) == (60, 60, 60)          # neither: the frame, dimmed
