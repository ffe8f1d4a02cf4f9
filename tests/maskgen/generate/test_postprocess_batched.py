"""The batched post-processing path gives exactly the per-frame reference's masks, scores and
store contents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskgen.generate.postprocess import PostprocessConfig, postprocess_batch
from maskgen.generate.postprocess_batched import (
    _fill_holes,
    _label8,
    postprocess_batch_batched,
    run_postprocess,
)

from .store_compare import assert_stores_equal


def _candidates(seed: int, b: int = 3, t: int = 6, size: int = 48):
    """Overlapping blobs (some touching the border, some ring-shaped with holes), speckle,
    a near-duplicate token, tied and NaN scores."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    probs = np.zeros((b, t, size, size), np.float32)
    for f in range(b):
        for k in range(t):
            for _ in range(3):
                cy, cx = rng.integers(-4, size + 4, 2)
                r = rng.integers(3, 14)
                d2 = (yy - cy) ** 2 + (xx - cx) ** 2
                blob = d2 < r * r
                if rng.random() < 0.4:  # a ring: a hole to fill
                    blob &= d2 >= (r // 2) ** 2
                probs[f, k] = np.maximum(probs[f, k], blob * rng.uniform(0.6, 1))
            probs[f, k] = np.maximum(probs[f, k], rng.random((size, size)) * 0.62)
        probs[f, 4] = probs[f, 1] * 0.97  # a duplicate token
    scores = rng.choice([0.2, 0.5, 0.9], (b, t)).astype(np.float32)
    scores[0, 2] = np.nan
    scores[1, 0] = 1.4  # clipped to 1
    return probs, scores


CONFIGS = [
    PostprocessConfig(k=6, min_area=4),
    PostprocessConfig(k=4, min_area=4, dedup_iou=0.5, min_score=0.4, smooth=0.05, min_area_frac=0.01),
    PostprocessConfig(k=40, min_area=1, dedup_iou=0.7, coherent=False),
    PostprocessConfig(k=8, min_area=2, smooth=0.0),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_batched_equals_the_per_frame_reference(seed, cfg, one_thread):
    probs, scores = _candidates(seed)
    ref = postprocess_batch(torch.from_numpy(probs), torch.from_numpy(scores), cfg)
    got = postprocess_batch_batched(torch.from_numpy(probs), torch.from_numpy(scores), cfg)
    assert len(got) == len(ref)
    total = 0
    for (m, s), (rm, rs) in zip(got, ref, strict=True):
        assert m.dtype == rm.dtype == bool and s.dtype == rs.dtype == np.float32
        np.testing.assert_array_equal(m, rm)
        np.testing.assert_array_equal(s, rs)
        total += len(rm)
    assert total > 3  # not trivially empty


def test_numpy_and_boolean_inputs_and_the_dispatcher(one_thread):
    probs, scores = _candidates(7, b=2)
    cfg = CONFIGS[0]
    ref = run_postprocess("frame", probs, scores, cfg)
    for got in (run_postprocess("batched", probs, scores, cfg),
                postprocess_batch_batched(torch.from_numpy(probs > cfg.mask_threshold), scores, cfg)):
        for (m, s), (rm, rs) in zip(got, ref, strict=True):
            np.testing.assert_array_equal(m, rm)
            np.testing.assert_array_equal(s, rs)
    with pytest.raises(ValueError, match="--postprocess"):
        run_postprocess("gpu", probs, scores, cfg)


def test_labels_are_raster_order_first_pixels_and_holes_fill():
    fg = torch.zeros(1, 6, 6, dtype=torch.bool)
    fg[0, 0, 3:5] = True          # component A, first pixel (0, 3)
    fg[0, 1, 5] = True            # diagonal to A: same component (8-connected)
    fg[0, 3:5, 0:2] = True        # component B, first pixel (3, 0)
    lab = _label8(fg).view(6, 6)
    assert lab[0, 3] == lab[0, 4] == lab[1, 5] == 3 * 0 + 3 + 1
    assert lab[3, 0] == lab[4, 1] == 3 * 6 + 0 + 1
    assert (lab[~fg[0]] == 0).all()
    ring = torch.zeros(1, 1, 7, 7)
    ring[0, 0, 1:6, 1:6] = 1
    ring[0, 0, 2:5, 2:5] = 0      # a 3 x 3 hole
    assert _fill_holes(ring)[0, 0, 2:5, 2:5].eq(1).all()
    ring[0, 0, 3, 1] = 0          # a gap to the border: no longer a hole
    assert _fill_holes(ring)[0, 0, 2:5, 2:5].eq(0).all()


def test_store_is_identical_with_either_path(tmp_path, toy_job_factory, one_thread):
    """``maskgen run``'s job end to end (load, letter-box, predict, post-process, write): the
    same arrays, attributes and manifest rows from both paths."""
    from maskgen.generate.job import run_mask_job

    outs = {}
    for path in ("frame", "batched"):
        outs[path] = tmp_path / path
        run_mask_job(toy_job_factory(outs[path], n=10, postprocess=path), progress=False)
    assert_stores_equal(outs["frame"], outs["batched"])


def test_unknown_path_is_refused(tmp_path, toy_job_factory):
    with pytest.raises(ValueError, match="postprocess"):
        toy_job_factory(tmp_path / "x", postprocess="gpu")
