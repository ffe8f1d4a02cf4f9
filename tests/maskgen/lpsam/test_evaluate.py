"""Held-out mask quality: Dice/IoU, precision/recall (which say whether masks are too large), how
many groups (patients, videos) the held-out frames come from, and the latent prompts against a
person's click and the ground-truth box."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from maskgen.lpsam.data import AnatomyClass, make_pairset
from maskgen.lpsam.evaluate import (
    class_report,
    evaluate,
    heldout_batches,
    overlap_scores,
    precision_recall,
    training_fit,
    training_sample,
)
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.prompts import interior_points
from maskgen.lpsam.report import (
    fit_section,
    mean_interval,
    prompt_comparison,
    prompted_dice,
    quality_table,
)
from maskgen.lpsam.testing import MICRO, synthetic_pairs

CPU = torch.device("cpu")


def _square(lo: int, hi: int, size: int = 10) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.bool)
    m[lo:hi, lo:hi] = True
    return m


def test_precision_recall_tell_a_too_large_mask_from_a_too_small_one():
    gt = _square(3, 7)                                     # 16 px
    large, small, empty = _square(2, 8), _square(4, 6), torch.zeros(10, 10, dtype=torch.bool)
    prec, rec = precision_recall(torch.stack([large, small, empty]), gt.expand(3, -1, -1))
    torch.testing.assert_close(prec[:2], torch.tensor([16 / 36, 1.0]))
    torch.testing.assert_close(rec, torch.tensor([1.0, 4 / 16, 0.0]))
    assert math.isnan(prec[2])                             # an empty mask has no precision
    # Dice alone is symmetric in the two kinds of error: it cannot tell them apart
    dice, _ = overlap_scores(torch.stack([large, small]), gt.expand(2, -1, -1))
    assert dice[0] < 1 and dice[1] < 1


def test_class_report_averages_precision_over_non_empty_masks_and_the_table_shows_both():
    gt = _square(3, 7)
    pred = torch.stack([_square(2, 8), torch.zeros(10, 10, dtype=torch.bool)])[:, None]   # (B=2, T=1)
    target = gt.expand(2, 1, -1, -1)
    valid = torch.ones(2, 1, dtype=torch.bool)
    report = class_report([(pred, target, valid)], ["cls"])["cls"]
    assert report["frames"] == 2
    assert report["precision_mean"] == round(16 / 36, 4)   # the empty mask does not count
    assert report["recall_mean"] == 0.5                    # it does for recall: (1 + 0) / 2
    table = quality_table({"cls": report})
    assert "precision | recall" in table[0]
    assert f"| {16 / 36:.3f} | 0.500 |" in table[2]


def test_quality_table_reads_reports_written_before_precision_and_recall():
    old = {"frames": 3, "dice_mean": 0.8, "dice_std": 0.1, "dice_median": 0.8, "iou_mean": 0.7,
           "iou_std": 0.1, "empty_gt": 0, "false_positive_rate": None}
    assert "| n/a | n/a |" in quality_table({"cls": old})[2]


def test_quality_table_gives_each_mean_its_95_percent_interval():
    row = {"frames": 80, "dice_mean": 0.783, "dice_std": 0.163, "dice_median": 0.839, "iou_mean": 0.669,
           "iou_std": 0.196, "empty_gt": 0, "false_positive_rate": None}
    assert mean_interval(0.163, 80) == pytest.approx(0.0357, abs=1e-4)   # 1.96 x 0.163 / sqrt(80)
    assert mean_interval(0.163, 320) == pytest.approx(mean_interval(0.163, 80) / 2)
    table = quality_table({"ddti/nodule": row, "none": {**row, "frames": 0, "dice_mean": None, "dice_std": None}})
    assert "| Dice | ± mean |" in table[0]
    assert "| 0.783 ± 0.163 | ±0.036 |" in table[2]
    assert "| n/a | n/a |" in table[3]


def test_summary_counts_the_held_out_groups_per_dataset():
    n = 6
    images = np.zeros((n, 8, 8), np.uint8)
    ds = np.array([0, 0, 0, 0, 1, 1])
    held = np.array([True, True, False, False, True, False])
    groups = ["a/p1", "a/p1", "a/p2", "a/p3", "b/x", "b/y"]   # two frames of one patient held out
    classes = [AnatomyClass("a", 1, "x"), AnatomyClass("b", 1, "y")]
    pairs = make_pairset(images, images, ds, held, ["a", "b"], classes, [str(i) for i in range(n)], groups=groups)
    per = pairs.summary()["datasets"]
    assert per["a"] == {"frames": 4, "held_out": 2, "held_out_groups": 1}
    assert per["b"] == {"frames": 2, "held_out": 1, "held_out_groups": 1}
    unknown = make_pairset(images, images, ds, held, ["a", "b"], classes, [str(i) for i in range(n)])
    assert "held_out_groups" not in unknown.summary()["datasets"]["a"]   # synthetic sets: no groups
    with pytest.raises(ValueError, match="group keys"):
        make_pairset(images, images, ds, held, ["a", "b"], classes, [str(i) for i in range(n)], groups=groups[:2])


def test_the_click_is_the_innermost_pixel_in_a_ring_s_wall_and_away_from_the_frame_edge():
    yy, xx = torch.meshgrid(torch.arange(41), torch.arange(41), indexing="ij")
    radius = ((yy - 20) ** 2 + (xx - 20) ** 2).float().sqrt()
    ring = (radius >= 10) & (radius <= 16)               # a myocardium-like wall around a hole
    square = torch.zeros(41, 41, dtype=torch.bool)
    square[5:16, 22:33] = True                           # 11 x 11: its centre is (27, 10)
    corner = torch.zeros(41, 41, dtype=torch.bool)
    corner[:7, :7] = True                                # touches the frame's edge
    (x_r, y_r), (x_s, y_s), (x_c, y_c) = interior_points(torch.stack([ring, square, corner]))[:, 0].long().tolist()
    assert ring[y_r, x_r] and 12 <= radius[y_r, x_r] <= 14   # mid-wall, not in the hole at (20, 20)
    assert (x_s, y_s) == (27, 10)
    assert (x_c, y_c) == (3, 3)                          # the frame's edge counts as boundary


def test_evaluate_scores_latent_prompts_a_click_and_the_box_on_the_same_frames(monkeypatch):
    pairs = synthetic_pairs(n_per_dataset=8, size=64, held_out_fraction=0.5)
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes)).eval()
    metrics = evaluate(model, pairs, CPU)
    assert list(metrics) == ["latent", "point", "box"]
    for name in metrics["latent"]:
        assert metrics["point"][name]["frames"] == metrics["box"][name]["frames"] == metrics["latent"][name]["frames"]
    # the click mode prompts the decoder with one positive point at each structure's innermost pixel
    seen = []
    encoder = model.prompt_encoder.forward

    def spy(points, boxes, masks):
        seen.append((points, boxes))
        return encoder(points=points, boxes=boxes, masks=masks)

    monkeypatch.setattr(model.prompt_encoder, "forward", spy)
    batches = list(heldout_batches(model, pairs, "point", CPU))
    idx = pairs.indices(held_out=True)
    target, valid = pairs.targets(idx)
    present = valid & (target.flatten(2).amax(-1) > 0)
    expected = interior_points(target[present] > 0.5)
    coords = torch.cat([points[0] for points, _ in seen])
    assert all(boxes is None for _, boxes in seen)
    torch.testing.assert_close(coords, expected)
    assert bool(torch.cat([points[1] for points, _ in seen]).eq(1).all())
    assert sum(int(v.sum()) for _, _, v in batches) == int(valid.sum())


def test_the_report_puts_latent_click_and_box_side_by_side_and_reads_reports_without_clicks():
    def q(d):
        return {"dice_mean": d}

    heldout = {"latent": {"ddti/nodule": q(0.783)}, "point": {"ddti/nodule": q(0.781)},
               "box": {"ddti/nodule": q(0.886)}}
    table = prompt_comparison(heldout)
    assert "| ddti/nodule | 0.783 | 0.781 | 0.886 |" in table
    assert prompted_dice(heldout, "ddti/nodule") == "GT click 0.781, GT box 0.886"
    old = {k: v for k, v in heldout.items() if k != "point"}    # report.json of an earlier version
    assert prompt_comparison(old) == []
    assert prompted_dice(old, "ddti/nodule") == "GT box 0.886"


def test_training_fit_scores_the_training_frames_as_they_are_with_latent_prompts():
    pairs = synthetic_pairs(n_per_dataset=12, size=64, held_out_fraction=0.25)   # 9 training frames a dataset
    sample = training_sample(pairs, per_dataset=5)
    assert len(sample) == 10 and not bool(pairs.held_out[sample].any())
    assert [int((pairs.dataset_index[sample] == d).sum()) for d in range(2)] == [5, 5]
    assert torch.equal(sample, training_sample(pairs, per_dataset=5))           # the same frames every time
    assert torch.equal(training_sample(pairs, per_dataset=100), pairs.indices(held_out=False))
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes)).eval()
    # every training frame scored is what the held-out evaluation gives when those frames are held out
    swapped = dataclasses.replace(pairs, held_out=~pairs.held_out)
    assert training_fit(model, pairs, CPU, per_dataset=100) == evaluate(model, swapped, CPU)["latent"]
    fit = training_fit(model, pairs, CPU, per_dataset=5)
    assert [fit[c.name]["frames"] for c in pairs.classes] == [5, 5, 5]


def test_the_fit_section_sets_training_dice_beside_held_out_dice():
    heldout = {"latent": {"ddti/nodule": {"dice_mean": 0.783}, "camus/LV": {"dice_mean": 0.6}}}
    fit = {"ddti/nodule": {"frames": 200, "dice_mean": 0.798}, "camus/LV": {"frames": 200, "dice_mean": 0.95}}
    lines = fit_section(heldout, fit)
    assert "| ddti/nodule | 200 | 0.798 | 0.783 | -0.015 |" in lines
    assert "| camus/LV | 200 | 0.950 | 0.600 | -0.350 |" in lines
    assert fit_section(heldout, None) == []                      # report.json of an earlier version
