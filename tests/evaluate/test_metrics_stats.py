"""Metrics against hand-computed cases; statistics against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evaluate.metrics import classification_metrics, segmentation_metrics
from evaluate.stats import paired_tests, summary


def test_classification_metrics_hand_case():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(pred, true)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class F1: c0 = 2*2/(4+0+1) = 0.8, c1 = 2/(2+1+1) = 0.5, c2 = 2/(2+1+0) = 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_classification_metrics_perfect_and_shape_error():
    assert classification_metrics(np.array([2, 1]), np.array([2, 1])) == {"accuracy": 1.0, "macro_f1": 1.0}
    with pytest.raises(ValueError, match="equal"):
        classification_metrics(np.array([1]), np.array([1, 2]))


def test_segmentation_metrics_hand_case():
    true = np.zeros((2, 4, 4), bool)
    pred = np.zeros((2, 4, 4), bool)
    true[0, :2, :2] = True           # 4 truth pixels
    pred[0, :2, :3] = True           # 6 predicted, 4 of them true: TP 4, FP 2, FN 0
    true[1, 0, 0] = True             # frame 2: prediction empty: TP 0, FN 1
    m = segmentation_metrics(pred, true)
    assert m["ppv"] == pytest.approx((4 / 6 + 0.0) / 2)
    assert m["sensitivity"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["dice"] == pytest.approx((8 / 10 + 0.0) / 2)


def test_summary_closed_form():
    x = [0.8, 0.9, 0.85, 0.7, 0.75]
    s = summary(x)
    mean, sd = np.mean(x), np.std(x, ddof=1)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert s["n"] == 5 and s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(sd)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert 2.776 < stats.t.ppf(0.975, 4) < 2.777  # the t quantile used for 5 folds
    assert math.isnan(summary([0.5])["std"])


def test_paired_tests_match_scipy():
    a = np.array([0.81, 0.86, 0.79, 0.90, 0.84])
    b = np.array([0.78, 0.80, 0.80, 0.85, 0.79])
    t = paired_tests(a, b)
    assert t["mean_diff"] == pytest.approx(np.mean(a - b))
    assert t["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert t["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # closed form of the paired t statistic
    d = a - b
    tstat = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert t["t_p"] == pytest.approx(2 * stats.t.sf(abs(tstat), 4))


def test_wilcoxon_floor_with_five_folds_and_degenerate_cases():
    better = paired_tests([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert better["wilcoxon_p"] == pytest.approx(0.0625)  # 2 / 2**5: never below 0.05 with n = 5
    same = paired_tests([0.5, 0.6], [0.5, 0.6])
    assert math.isnan(same["t_p"]) and math.isnan(same["wilcoxon_p"])
    with pytest.raises(ValueError):
        paired_tests([1, 2], [1, 2, 3])


def test_glance_table_gives_each_method_its_interval_and_the_full_method_its_paired_differences():
    from evaluate.report import glance_table
    from evaluate.stats import paired_tests, summary

    plan = {"methods": ["random", "anaus", "anaus-grid"], "reference": "random", "full_method": "anaus",
            "ablations": ["anaus-grid"], "profile": {"protocols": ["frozen", "linear"]}}
    infos = [{"task": "busi-seg", "kind": "segmentation", "status": "ok"},
             {"task": "busi-cls", "kind": "classification", "status": "ok"}]
    dice = {"random": [0.30, 0.40, 0.35], "anaus": [0.50, 0.52, 0.47], "anaus-grid": [0.45, 0.50, 0.40]}
    rows = [{"task": "busi-seg", "protocol": "frozen", "fold": f, "method": m, "seed": 0, "metric": "dice", "value": v}
            for m, values in dice.items() for f, v in enumerate(values)]
    tests = [{"protocol": "frozen", "task": "busi-seg", "metric": "dice", "method": m, "baseline": b,
              **paired_tests(dice[m], dice[b])} for m, b in (("anaus", "random"), ("anaus-grid", "random"),
                                                               ("anaus", "anaus-grid"))]
    lines = glance_table(plan, infos, rows, tests)
    header, row = lines[2], lines[4]
    assert header == "| protocol, task | random | anaus-grid | anaus | anaus − random | anaus − anaus-grid |"
    s = summary(dice["anaus"])
    t = paired_tests(dice["anaus"], dice["random"])
    assert row.startswith("| frozen, busi-seg | 35.0 ± ")
    assert f"| {100 * s['mean']:.1f} ± {100 * (s['ci_high'] - s['mean']):.1f} |" in row
    assert f"| +{100 * t['mean_diff']:.1f} (p {t['t_p']:.2f}) |" in row
    assert len(lines) == 6  # the classification task has no cell under either protocol: no row
    assert glance_table(plan, infos, [], []) == []
