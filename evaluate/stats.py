"""Spread, intervals and paired tests over cross-validation folds.

Values enter per fold (seeds averaged within a fold first, so n = number of folds and the
folds pair methods exactly). With n = 5 the tests are weak: the two-sided Wilcoxon
signed-rank test cannot go below p = 2/2^5 = 0.0625, and the t-test assumes roughly normal
differences; folds also share training frames, so intervals are optimistic (Nadeau & Bengio).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def summary(values) -> dict[str, float]:
    """Mean, sample std (ddof 1), and the 95% t interval of the mean over ``values`` (n folds)."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def paired_tests(a, b) -> dict[str, float]:
    """Paired comparison of ``a`` against ``b`` on the same folds (equal length vectors).

    Returns the mean difference a - b, the paired t-test p (scipy ``ttest_rel``) and the
    Wilcoxon signed-rank p (two-sided, exact for small n); NaN where a test is undefined
    (n < 2, or every difference zero).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired tests need equal shapes, got {a.shape} and {b.shape}")
    diff = a - b
    out = {"n": len(diff), "mean_diff": float(diff.mean()) if len(diff) else math.nan,
           "t_p": math.nan, "wilcoxon_p": math.nan}
    if len(diff) < 2 or np.allclose(diff, 0):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.ptp(diff) > 0:
            out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
        else:  # constant non-zero difference: the t statistic is infinite
            out["t_p"] = 0.0
        out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    return out
