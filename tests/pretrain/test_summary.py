"""A run in a few numbers: probes at step 0 / peak / end, whether they had flattened, loss, drift."""

from __future__ import annotations

import json
import math

import pytest

from pretrain.summary import summarize_run


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_a_probe_that_flattened_and_one_still_rising(tmp_path):
    steps = [0, 10, 20, 30, 40]
    flat = [0.1, 0.3, 0.38, 0.4, 0.4]       # all of the rise before the last quarter (after step 30)
    rising = [0.5, 0.5, 0.5, 0.5, 0.7]      # all of it in the last quarter
    records = [{"step": s, "loss": 20.0 - s / 10, "backbone/rel_change": s / 100} for s in range(1, 41)]
    records += [{"step": s, "probe/busi-seg/dice": f, "probe/busi-cls/knn_acc": r,
                 "probe/busi-seg/pixels": 0.07, "probe/busi-cls/chance": 0.53} for s, f, r in zip(steps, flat, rising, strict=True)]
    summary = summarize_run(_write(tmp_path / "metrics.jsonl", records), window=10)
    assert summary.steps == 40 and summary.rel_change == pytest.approx(0.40)
    assert summary.loss == pytest.approx((20.0 - 0.55, 20.0 - 3.55))  # means of steps 1-10 and 31-40
    dice, knn = summary.probes["probe/busi-seg/dice"], summary.probes["probe/busi-cls/knn_acc"]
    assert (dice.first, dice.last, dice.peak) == (0.1, 0.4, (30, 0.4))  # the first step at the peak
    assert dice.late_share == pytest.approx(0.0) and knn.late_share == pytest.approx(1.0)
    assert summary.references == {"probe/busi-seg/pixels": 0.07, "probe/busi-cls/chance": 0.53}
    assert set(summary.probes) == {"probe/busi-seg/dice", "probe/busi-cls/knn_acc"}


def test_a_probe_that_fell_has_no_late_share_and_a_torn_line_is_dropped(tmp_path):
    path = _write(tmp_path / "metrics.jsonl", [{"step": 1, "loss": 3.0}] + [
        {"step": s, "probe/x/dice": v} for s, v in ((0, 0.3), (5, 0.4), (10, 0.2))])
    with open(path, "a") as f:
        f.write('{"step": 11, "lo')  # a run killed mid-write
    summary = summarize_run(path)
    trace = summary.probes["probe/x/dice"]
    assert trace.peak == (5, 0.4) and math.isnan(trace.late_share) and math.isnan(summary.rel_change)
    with pytest.raises(ValueError, match="no training step"):
        summarize_run(_write(tmp_path / "empty.jsonl", [{"step": 0, "probe/x/dice": 0.1}]))
