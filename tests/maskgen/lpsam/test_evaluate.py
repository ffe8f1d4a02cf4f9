"""Held-out mask quality: Dice/IoU, precision/recall (which say whether masks are too large), and
how many groups (patients, videos) the held-out frames come from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maskgen.lpsam.data import AnatomyClass, make_pairset
from maskgen.lpsam.evaluate import class_report, overlap_scores, precision_recall
from maskgen.lpsam.report import quality_table


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
