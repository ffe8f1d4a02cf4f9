"""Image formation: speckle statistics, PSF growth, fluid, shadows, geometry, exact masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from maskgen.phantom.fields import TissueFields
from maskgen.phantom.geometry import BeamGrid, Probe, make_probe
from maskgen.phantom.quality import RAYLEIGH_SNR, otsu_dice, otsu_threshold, speckle_snr
from maskgen.phantom.render import (
    Imaging,
    Structure,
    Tissue,
    beam_envelope,
    paint_properties,
    render_frame,
    render_mask,
)
from maskgen.phantom.shapes import Blob, random_harmonics
from maskgen.phantom.softtissue import CALC, FLUID, breast_scene, thyroid_scene


@pytest.mark.parametrize("kind", ["linear", "curvilinear", "phased"])
def test_speckle_snr_is_rayleigh(kind):
    snr = np.mean([speckle_snr(seed, 192, kind) for seed in range(2)])
    assert abs(snr - RAYLEIGH_SNR) < 0.06, snr


def _autocorr_width(rows: np.ndarray) -> float:
    """Lateral correlation length (samples) of the envelope rows: area under the normalised ACF."""
    x = rows - rows.mean(axis=1, keepdims=True)
    spec = np.abs(np.fft.rfft(x, n=2 * x.shape[1], axis=1)) ** 2
    acf = np.fft.irfft(spec, axis=1)[:, :12].mean(axis=0)
    acf = acf / acf[0]
    return float(acf[acf > 0].sum())


def test_lateral_psf_widens_with_depth():
    rng = np.random.default_rng(0)
    grid = BeamGrid(Probe("linear", 256, 256))
    fields = TissueFields(rng, 256, 256, margin=4)
    scatter, blob, streak = fields.sample(grid.x, grid.y)
    maps = paint_properties([], grid, Tissue(texture=0.0))
    env = beam_envelope(maps, scatter, blob, streak, grid, Imaging(lateral_sigma=(1.0, 4.0)))
    assert _autocorr_width(env[200:240]) > 1.8 * _autocorr_width(env[16:56])


def _scene_frame(structures, kind="linear", seed=0):
    rng = np.random.default_rng(seed)
    grid = BeamGrid(make_probe(kind, 256, 256, rng))
    fields = TissueFields(rng, 256, 256)
    image = render_frame(structures, grid, fields, Imaging())
    return grid, image


def test_cyst_is_anechoic_with_posterior_enhancement():
    cyst = Blob(128, 90, 30, 22)
    grid, image = _scene_frame([Structure(cyst, FLUID, "cyst")])
    mask = render_mask([Structure(cyst, FLUID, "cyst")], grid, {"cyst": 1}).astype(bool)
    core = ndimage.binary_erosion(mask, iterations=4)  # the wall is blurred by the PSF
    assert core.sum() > 500
    inside = image[core].mean()
    beside = image[60:120, 20:60].mean()
    below = image[125:165, 110:146].mean()
    side_deep = image[125:165, 20:56].mean()
    assert inside < 0.35 * beside
    assert below > side_deep + 8  # posterior acoustic enhancement


def test_calcification_casts_a_shadow():
    grid, image = _scene_frame([Structure(Blob(128, 80, 6, 5), CALC, "calcification")])
    assert image[110:200, 124:132].mean() < 0.5 * image[110:200, 40:80].mean()


def test_outside_the_sector_is_black():
    for kind in ("curvilinear", "phased"):
        grid, image = _scene_frame([], kind)
        assert not grid.fov.all()
        assert image[~grid.fov].max() == 0
        assert image[grid.fov].mean() > 40


def test_mask_is_exactly_the_inside_of_the_outline():
    blob = Blob(120, 130, 40, 25, 0.3, random_harmonics(np.random.default_rng(1), 1.0, 0.8))
    grid = BeamGrid(Probe("linear", 256, 256))
    mask = render_mask([Structure(blob, Tissue(), "lesion")], grid, {"lesion": 3})
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    assert np.array_equal(mask == 3, blob.field(xx, yy) < 0)
    assert set(np.unique(mask)) == {0, 3}


def test_painting_order_and_unmapped_roles():
    outer, inner = Blob(128, 128, 50, 50), Blob(128, 128, 20, 20)
    grid = BeamGrid(Probe("linear", 256, 256))
    st = [Structure(outer, Tissue(), "organ"), Structure(inner, FLUID, "cyst"),
          Structure(Blob(128, 128, 5, 5), CALC, None)]
    mask = render_mask(st, grid, {"organ": 1, "cyst": 2})
    assert mask[128, 128] == 2 and mask[128, 165] == 1 and mask[10, 10] == 0
    only_organ = render_mask(st, grid, {"organ": 1})
    assert only_organ[128, 128] == 0 and only_organ[128, 165] == 1  # the cyst is not organ
    st.append(Structure(Blob(128, 150, 5, 5), CALC, None))  # role None: no change
    assert np.array_equal(render_mask(st, grid, {"organ": 1}), only_organ)


def test_otsu_does_not_recover_lesions():
    rng = np.random.default_rng(3)
    scores = []
    for kind in ("benign", "malignant"):
        for _ in range(3):
            scene = breast_scene(rng, 224, 256, kind)
            image, st = scene.frame()
            truth = scene.mask(st, {"lesion": 1}).astype(bool)
            scores.append(otsu_dice(image, truth, scene.grid.fov))
    assert np.mean(scores) < 0.4, scores


def test_otsu_threshold_separates_two_levels():
    values = np.concatenate([np.full(100, 40), np.full(100, 200)]).astype(np.uint8)
    assert 40 <= otsu_threshold(values) < 200


def test_video_frames_move_smoothly():
    scene = thyroid_scene(np.random.default_rng(4), 200, 224, "benign", frames_motion=12.0)
    a, _ = scene.frame(0.0)
    b, _ = scene.frame(0.02)
    c, _ = scene.frame(0.5)
    diff = lambda x, y: np.abs(x.astype(float) - y).mean()  # noqa: E731
    assert diff(a, b) < diff(a, c)  # neighbouring frames share their speckle


def test_cardiac_wall_moves_over_the_cycle():
    from maskgen.phantom.cardiac import heart_scene

    scene = heart_scene(np.random.default_rng(6), 240, 224, "4ch", cycles=1.0)
    areas = [int((scene.mask(scene.frame(t)[1], {"lv": 1}) == 1).sum()) for t in (0.0, 0.5)]
    assert areas[1] < 0.85 * areas[0]  # end-systole smaller than end-diastole
    st = scene.frame(0.25)[1]
    wall, cavity = scene.mask(st, {"myocardium": 1}), scene.mask(st, {"lv": 1})
    assert cavity.any() and wall.any() and not (wall & cavity).any()  # HMC-QU: wall only
