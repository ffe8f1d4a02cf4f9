"""Post-processing: coherent regions, components, small-component removal, dedup by IoU, top-K."""

import numpy as np
import pytest
import torch

from maskgen.generate.postprocess import (
    PostprocessConfig,
    coherent_regions,
    min_component_area,
    postprocess_batch,
    postprocess_frame,
    split_components,
)

RAW = {"coherent": False}  # the component rule alone (coherent regions tested below)


def pairwise_iou(masks):
    """Reference: (M, S, S) bool -> (M, M) IoU by matrix product (0 where both are empty)."""
    flat = masks.reshape(len(masks), -1).astype(np.float64)
    inter = flat @ flat.T
    area = flat.sum(axis=1)
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def dedup_by_iou(masks, scores, max_iou):
    """Reference greedy NMS over all masks: indices kept, highest score first (stable)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    iou = pairwise_iou(masks)
    kept = []
    for i in order:
        if all(iou[i, j] <= max_iou for j in kept):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


def reference_postprocess(probs, scores, cfg):
    """Straight from the definition: every component, full IoU matrix, then the first K."""
    inst, sc = [], []
    for t in range(len(probs)):
        if scores[t] >= cfg.min_score:
            binary = probs[t] > cfg.mask_threshold
            if cfg.coherent:
                binary = coherent_regions(binary, cfg)
            for comp in split_components(binary, min_component_area(cfg, binary.shape)):
                inst.append(comp)
                sc.append(scores[t])
    if not inst:
        return np.zeros((0, *probs.shape[1:]), bool), np.zeros(0, np.float32)
    kept = dedup_by_iou(np.stack(inst), np.asarray(sc), cfg.dedup_iou)[: cfg.k]
    return np.stack(inst)[kept], np.asarray(sc, np.float32)[kept]


def disc(cy, cx, r, size=32):
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


@pytest.mark.parametrize("seed", range(6))
def test_fast_postprocess_equals_the_reference(seed):
    rng = np.random.default_rng(seed)
    size = 48
    yy, xx = np.mgrid[:size, :size]
    probs = np.zeros((5, size, size), np.float32)
    for t in range(5):  # overlapping blobs across tokens + speckle: duplicates and small parts
        for _ in range(4):
            cy, cx, r = rng.integers(0, size, 2).tolist() + [rng.integers(3, 12)]
            probs[t] = np.maximum(probs[t], ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * rng.uniform(0.6, 1))
        probs[t] = np.maximum(probs[t], rng.random((size, size)) * 0.7)
    probs[3] = probs[1] * 0.95  # a duplicate token
    scores = rng.choice([0.3, 0.5, 0.9], 5).astype(np.float32)  # ties on purpose
    for cfg in (PostprocessConfig(k=6, min_area=4, dedup_iou=0.7, **RAW),
                PostprocessConfig(k=40, min_area=1, dedup_iou=0.5, min_score=0.4, **RAW),
                PostprocessConfig(k=6, min_area=4, dedup_iou=0.7, smooth=0.05, min_area_frac=0.01)):
        fast, ref = postprocess_frame(probs, scores, cfg), reference_postprocess(probs, scores, cfg)
        np.testing.assert_array_equal(fast[0], ref[0])
        np.testing.assert_array_equal(fast[1], ref[1])
        assert len(fast[0]) > 1


def test_pairwise_iou_matches_a_loop():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 16, 16)) > 0.6
    masks[4] = False
    fast = pairwise_iou(masks)
    for i in range(5):
        for j in range(5):
            inter, union = (masks[i] & masks[j]).sum(), (masks[i] | masks[j]).sum()
            assert fast[i, j] == pytest.approx(inter / union if union else 0.0)


def test_components_are_split_and_small_ones_removed():
    mask = disc(8, 8, 5) | disc(24, 24, 5) | disc(8, 26, 1.5)  # two discs and a speck
    comps = split_components(mask, min_area=10)
    assert len(comps) == 2
    assert comps[0][8, 8] and comps[1][24, 24]  # raster order of first pixel
    assert not any(c[8, 26] for c in comps)
    assert len(split_components(mask, min_area=1)) == 3
    diagonal = np.zeros((4, 4), bool)
    diagonal[0, 0] = diagonal[1, 1] = True
    assert len(split_components(diagonal, 1)) == 1  # 8-connectivity


def test_dedup_keeps_the_higher_score():
    a, b = disc(16, 16, 8), disc(16, 17, 8)  # near-duplicates in two tokens
    c = disc(4, 4, 3)
    probs = np.stack([a, b | c]).astype(np.float32)
    masks, scores = postprocess_frame(probs, np.array([0.5, 0.9]), PostprocessConfig(min_area=5, dedup_iou=0.8, **RAW))
    assert scores.tolist() == pytest.approx([0.9, 0.9])
    np.testing.assert_array_equal(masks[0], c)  # same token: raster order of first pixel
    np.testing.assert_array_equal(masks[1], b)  # a (score 0.5) was b's near-duplicate
    _, scores_all = postprocess_frame(probs, np.array([0.5, 0.9]), PostprocessConfig(min_area=5, dedup_iou=1.0, **RAW))
    assert scores_all.tolist() == pytest.approx([0.9, 0.9, 0.5])


def test_latent_first_priority_keeps_class_masks_and_fills_the_rest_with_proposals():
    a, a2 = disc(16, 16, 8), disc(16, 17, 8)          # a class mask (score 0.4), a proposal duplicating it
    c, d = disc(4, 4, 3), disc(27, 27, 3)
    probs = np.stack([a, a2, c, d]).astype(np.float32)
    scores = np.array([0.4, 0.9, 0.8, 0.7])
    cfg = PostprocessConfig(k=2, min_area=5, dedup_iou=0.8, **RAW)
    by_score_only, s0 = postprocess_frame(probs, scores, cfg)
    assert s0.tolist() == pytest.approx([0.9, 0.8])   # one ranking: the class mask loses its slot
    masks, s1 = postprocess_frame(probs, scores, cfg, priority=np.array([0, 1, 1, 1]))
    assert s1.tolist() == pytest.approx([0.8, 0.4])   # class mask kept, duplicate dropped, stored by score
    np.testing.assert_array_equal(masks[0], c)
    np.testing.assert_array_equal(masks[1], a)
    same, s2 = postprocess_frame(probs, scores, cfg, priority=np.zeros(4, int))
    np.testing.assert_array_equal(same, by_score_only)
    assert s2.tolist() == s0.tolist()


def test_top_k_by_score_and_token_components_inherit_scores():
    size = 32
    probs = np.zeros((3, size, size), np.float32)
    probs[0] = disc(6, 6, 4) * 0.9 + disc(25, 25, 4) * 0.9  # two components, score 0.3
    probs[1] = disc(6, 25, 4) * 0.8                          # score 0.95
    probs[2] = disc(25, 6, 4) * 0.4                          # below the threshold: nothing
    masks, scores = postprocess_frame(probs, np.array([0.3, 0.95, 0.99]), PostprocessConfig(k=2, min_area=5, **RAW))
    assert scores.tolist() == pytest.approx([0.95, 0.3])
    assert masks.shape == (2, size, size) and masks.dtype == bool
    assert masks[0][6, 25] and masks[1][6, 6] and not masks[1][25, 25]  # top 2 only, stable ties


def test_min_score_drops_tokens_and_empty_result_has_right_shapes():
    probs = np.stack([disc(16, 16, 6)]).astype(np.float32)
    masks, scores = postprocess_frame(probs, np.array([0.2]), PostprocessConfig(min_score=0.5))
    assert masks.shape == (0, 32, 32) and scores.shape == (0,)


def test_batch_of_tensors_equals_per_frame_numpy():
    rng = np.random.default_rng(1)
    probs = rng.random((2, 3, 24, 24)).astype(np.float32)
    scores = rng.random((2, 3)).astype(np.float32)
    cfg = PostprocessConfig(k=4, min_area=2, dedup_iou=0.5, **RAW)
    batch = postprocess_batch(torch.from_numpy(probs), torch.from_numpy(scores), cfg)
    for b in range(2):
        m, s = postprocess_frame(probs[b], scores[b], cfg)
        np.testing.assert_array_equal(batch[b][0], m)
        np.testing.assert_array_equal(batch[b][1], s)


def test_coherent_regions_remove_speckle_fill_holes_and_drop_small_parts():
    size = 128
    rng = np.random.default_rng(0)
    organ = disc(64, 64, 30, size) & ~disc(64, 64, 6, size)      # an organ with a hole
    speckle = rng.random((size, size)) > 0.97                      # scattered single pixels
    small = disc(10, 110, 3, size)                                 # 28 px < 0.01 of the frame
    cfg = PostprocessConfig(smooth=0.02, min_area_frac=0.01)
    out = coherent_regions(organ | speckle | small, cfg)
    assert out[64, 64]                                             # hole filled
    assert not out[10, 110] and not (out & ~disc(64, 64, 33, size)).any()  # speck and small part gone
    assert (out & organ).sum() / organ.sum() > 0.97                # the organ itself is kept
    assert min_component_area(cfg, (size, size)) == int(np.ceil(0.01 * size * size))
    assert min_component_area(PostprocessConfig(min_area=5, **RAW), (size, size)) == 5
    assert not coherent_regions(np.zeros((8, 8), bool), cfg).any()


def test_coherent_frame_gives_fewer_larger_masks_than_raw_components():
    size = 96
    rng = np.random.default_rng(3)
    probs = (disc(48, 48, 20, size) & (rng.random((size, size)) > 0.15)) | (rng.random((size, size)) > 0.95)
    raw, _ = postprocess_frame(probs[None].astype(np.float32), np.array([0.9]), PostprocessConfig(min_area=1, **RAW))
    coherent, _ = postprocess_frame(probs[None].astype(np.float32), np.array([0.9]), PostprocessConfig(min_area=1))
    assert len(coherent) == 1 < len(raw)
    assert coherent[0].sum() > raw[0].sum() and coherent[0][48, 48]


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 256}, {"mask_threshold": 1.0}, {"min_area": 0},
                                    {"dedup_iou": 0.0}, {"min_score": 1.5}, {"smooth": 0.5},
                                    {"min_area_frac": 1.0}])
def test_bad_settings_name_the_value(kwargs):
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        PostprocessConfig(**kwargs)
