"""Predicted score vs true IoU: Spearman against its definition, pairs, the figure, the report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.report import score_section
from maskgen.lpsam.score_quality import evaluate_scores, score_iou_pairs, score_report, spearman
from maskgen.lpsam.testing import MICRO, synthetic_pairs


def _ranks(x):
    """Mean ranks of ties, straight from the definition."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def test_spearman_is_the_pearson_correlation_of_ranks():
    rng = np.random.default_rng(0)
    a = rng.random(40).round(1)  # many ties
    b = a + rng.normal(0, 0.3, 40)
    expected = np.corrcoef(_ranks(a), _ranks(b))[0, 1]
    assert spearman(a, b) == pytest.approx(expected, abs=1e-4)
    assert spearman(a, np.exp(3 * b)) == spearman(a, b)  # ranks only
    assert spearman(a, -b) == pytest.approx(-expected, abs=1e-4)
    assert spearman(a[:2], b[:2]) is None and spearman(np.ones(5), b[:5]) is None


def test_pairs_report_figure(tmp_path):
    pairs = synthetic_pairs(n_per_dataset=8, size=MICRO.input_size, seed=1)
    torch.manual_seed(0)
    model = build_lpsam(MICRO, len(pairs.classes)).eval()
    scores, ious, classes = score_iou_pairs(model, pairs, torch.device("cpu"), batch_size=3)
    _, valid = pairs.targets(pairs.indices(held_out=True))
    assert len(scores) == len(ious) == len(classes) == int(valid.sum())  # every valid (frame, class)
    assert ((scores >= 0) & (scores <= 1) & (ious >= 0) & (ious <= 1)).all()
    report = evaluate_scores(model, pairs, torch.device("cpu"), tmp_path)
    assert report["pairs"] == len(scores) and set(report["per_class"]) == {c.name for c in pairs.classes}
    assert (tmp_path / "score_vs_iou.png").stat().st_size > 1000
    assert "baseline_spearman" in report and "baseline_spearman" in report["per_class"]["heart/cavity"]
    text = "\n".join(score_section(report))
    assert "Spearman" in text and "(score_vs_iou.png)" in text


def test_report_of_perfect_and_reversed_scores():
    ious = np.array([0.1, 0.5, 0.9, 0.3], np.float32)
    classes = np.array([0, 0, 1, 1])
    assert score_report(ious, ious, classes, ["a", "b"])["spearman"] == 1.0
    reversed_ = score_report(1 - ious, ious, classes, ["a", "b"])
    assert reversed_["spearman"] == -1.0 and reversed_["per_class"]["a"]["pairs"] == 2
    with_baseline = score_report(ious, ious, classes, ["a", "b"], baseline=1 - ious)
    assert with_baseline["baseline_spearman"] == -1.0 and with_baseline["spearman"] == 1.0
