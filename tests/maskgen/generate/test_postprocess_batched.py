"""The batched post-processing path gives exactly the per-frame reference's masks, scores and
store contents."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from maskgen.generate.postprocess import PostprocessConfig, frame_regions, postprocess_batch
from maskgen.generate.postprocess_batched import (
    POSTPROCESS_PATHS,
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


@pytest.mark.parametrize("seed", range(3))
def test_batched_equals_the_reference_with_latent_first_priority(seed, one_thread):
    probs, scores = _candidates(seed)
    priority = np.array([0, 0, 1, 1, 1, 1])   # two class tokens, then proposals
    for cfg in (CONFIGS[0], CONFIGS[1]):
        ref = run_postprocess("frame", probs, scores, cfg, priority=priority)
        got = run_postprocess("batched", probs, scores, cfg, priority=priority)
        for (m, s), (rm, rs) in zip(got, ref, strict=True):
            np.testing.assert_array_equal(m, rm)
            np.testing.assert_array_equal(s, rs)
            assert (np.diff(rs) <= 0).all()    # stored in descending score, whatever the priority


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


def _padding_candidates(size: int = 64):
    """A tall frame letter-boxed to size x size (content columns 16..47) and three candidates:
    a disc wholly in the right padding (the best score), a rectangle straddling the right edge
    of the frame, and a disc inside it."""
    from maskgen.datasets.letterbox import Letterbox

    box = Letterbox.fit(128, 64, size)
    assert (box.top, box.left, box.h, box.w) == (0, 16, 64, 32)
    yy, xx = np.mgrid[:size, :size]
    probs = np.zeros((1, 3, size, size), np.float32)
    probs[0, 0] = ((yy - 30) ** 2 + (xx - 56) ** 2 < 36) * 0.9     # columns 51..61: padding only
    probs[0, 1, 10:31, 30:59] = 0.8                                  # columns 30..58: cut at 48
    probs[0, 2] = ((yy - 50) ** 2 + (xx - 28) ** 2 < 25) * 0.9      # inside the frame
    scores = np.array([[0.95, 0.9, 0.5]], np.float32)
    return box, probs, scores


@pytest.mark.parametrize("path", POSTPROCESS_PATHS)
@pytest.mark.parametrize("coherent", [False, True])
def test_candidates_are_clipped_to_the_frame(path, coherent, one_thread):
    """A candidate wholly in the letter-box padding is dropped, one straddling the frame's edge
    is cut there (before the component / size / dedup steps), on both paths alike."""
    box, probs, scores = _padding_candidates()
    regions = frame_regions([box], 64)
    assert regions[0].sum() == 64 * 32 and regions[0, :, 16:48].all()
    cfg = PostprocessConfig(k=4, min_area=4, coherent=coherent)
    (masks, got_scores), = run_postprocess(path, probs, scores, cfg, regions)
    np.testing.assert_array_equal(got_scores, np.array([0.9, 0.5], np.float32))  # 0.95 is gone
    assert not (masks & ~regions[0]).any()
    straddler = np.zeros((64, 64), bool)
    straddler[10:31, 30:48] = True
    if not coherent:
        np.testing.assert_array_equal(masks[0], straddler)
    else:  # the smoothing may round the corners, never passes the cut
        assert masks[0][12:29, 32:48].all() and not masks[0][:, 48:].any()
    # clipping first is the same as candidates that never reached the padding ...
    (pre, pre_scores), = run_postprocess(path, probs * regions[:, None], scores, cfg)
    np.testing.assert_array_equal(masks, pre)
    np.testing.assert_array_equal(got_scores, pre_scores)
    # ... and without the rule (or without boxes) the padding masks stay
    for off in (run_postprocess(path, probs, scores, replace(cfg, clip_to_frame=False), regions)[0],
                run_postprocess(path, probs, scores, cfg)[0]):
        assert off[1][0] == np.float32(0.95) and off[0][0][:, 48:].any()


def test_clipped_batched_equals_the_per_frame_reference(one_thread):
    """The identity on random candidates with random content boxes (wide and tall frames)."""
    from maskgen.datasets.letterbox import Letterbox

    probs, scores = _candidates(3, b=3)
    boxes = [Letterbox.fit(20, 48, 48), Letterbox.fit(48, 30, 48), Letterbox.fit(48, 48, 48)]
    regions = frame_regions(boxes, 48)
    for cfg in CONFIGS:
        ref = run_postprocess("frame", probs, scores, cfg, regions)
        got = run_postprocess("batched", torch.from_numpy(probs), torch.from_numpy(scores), cfg, regions)
        unclipped = run_postprocess("frame", probs, scores, cfg)
        for f, ((m, s), (rm, rs)) in enumerate(zip(got, ref, strict=True)):
            np.testing.assert_array_equal(m, rm)
            np.testing.assert_array_equal(s, rs)
            assert not (rm & ~regions[f]).any()
        assert any((um & ~regions[f]).any() for f, (um, _) in enumerate(unclipped))  # clipping mattered


def test_bad_content_boxes_are_refused():
    from maskgen.datasets.letterbox import Letterbox

    with pytest.raises(ValueError, match="does not fit"):
        frame_regions([Letterbox(64, 10, 10, 0, 40, 64, 32)], 64)
    probs, scores = _candidates(0, b=2)
    with pytest.raises(ValueError, match="regions"):
        run_postprocess("batched", probs, scores, CONFIGS[0], np.ones((1, 48, 48), bool))
    with pytest.raises(ValueError, match="regions"):
        run_postprocess("frame", probs, scores, CONFIGS[0], np.ones((1, 48, 48), bool))


def test_stores_hold_no_padding_masks_and_are_identical_with_either_path(tmp_path, toy_job_factory, standins,
                                                                         one_thread):
    """End to end with a stand-in that puts masks in the letter-box padding (the best-scored
    tokens): both paths store the same arrays, every stored mask lies inside its frame, and
    the setting is recorded; without the rule the padding masks are stored."""
    from maskgen.datasets.letterbox import Letterbox
    from maskgen.generate.job import run_mask_job
    from maskgen.store import STATUS_FAILED, open_store, unpack_masks

    predictor = standins.ToyPredictorSpec(64, padding=True)
    jobs = {path: toy_job_factory(tmp_path / path, n=10, k=6, predictor=predictor, postprocess=path)
            for path in ("frame", "batched")}
    jobs["off"] = replace(jobs["frame"], out=str(tmp_path / "off"), post=replace(jobs["frame"].post,
                                                                               clip_to_frame=False))
    for job in jobs.values():
        run_mask_job(job, progress=False)
    assert_stores_equal(tmp_path / "frame", tmp_path / "batched")

    def outside(path) -> int:
        """Stored mask pixels outside their frame's content box, over the whole store."""
        store = open_store(path)
        data, total = store.read(0, len(store)), 0
        for r in store.manifest.to_pylist():
            if r["status"] == STATUS_FAILED:
                continue
            box = Letterbox.fit(r["orig_height"], r["orig_width"], 64)
            region = frame_regions([box], 64)[0]
            masks = unpack_masks(data["masks"][r["row"], : data["counts"][r["row"]]])
            total += int((masks & ~region).sum())
        return total

    assert open_store(tmp_path / "frame").attrs["generation"]["post_clip_to_frame"] is True
    assert open_store(tmp_path / "off").attrs["generation"]["post_clip_to_frame"] is False
    assert outside(tmp_path / "frame") == 0
    assert outside(tmp_path / "off") > 1000  # the padding token's masks, stored without the rule
    data = open_store(tmp_path / "frame").read(0, 10)
    assert not (data["scores"] == np.float32(0.95)).any()  # the padding token: nothing left in any frame
    # row 0 is a 48 x 64 frame (content rows 8..55): the top-quarter token is cut to rows 8..15
    n0 = data["counts"][0]
    top = unpack_masks(data["masks"][0, :n0])[data["scores"][0, :n0] == np.float32(0.85)]
    expected = np.zeros((64, 64), bool)
    expected[8:16] = True
    assert len(top) == 1
    np.testing.assert_array_equal(top[0], expected)
