"""A pre-training run in a few numbers, read back from its ``metrics.jsonl``.

``summarize_run`` answers what a reader of a comparison asks first: did the run learn, and did
it stop learning (its online probes at step 0, at their peak and at the end, with the share of
the rise the last quarter of the run added), how far did the backbone move, how far did the
pretext loss fall. ``evaluate report`` puts it beside the downstream tables of the runs
``evaluate sweep --ablations`` trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pretrain.jsonl import read_records

PROBE_PREFIX = "probe/"


@dataclass(frozen=True)
class ProbeTrace:
    """One online probe score (``probe/<task>/<score>``) over a run.

    ``late_share``: the share of the rise from step 0 to the end that came in the run's last
    quarter of steps (near 0: the probe had flattened; near 1: still rising at the end); NaN
    when the probe did not rise."""

    key: str
    steps: tuple[int, ...]
    values: tuple[float, ...]

    @property
    def first(self) -> float:
        return self.values[0]

    @property
    def last(self) -> float:
        return self.values[-1]

    @property
    def peak(self) -> tuple[int, float]:
        """(step, value) of the highest score (the first such step)."""
        i = max(range(len(self.values)), key=lambda j: (self.values[j], -j))
        return self.steps[i], self.values[i]

    @property
    def late_share(self) -> float:
        rise = self.last - self.first
        if len(self.values) < 3 or rise <= 0:
            return math.nan
        cut = self.steps[0] + 0.75 * (self.steps[-1] - self.steps[0])
        before = [v for s, v in zip(self.steps, self.values, strict=True) if s <= cut][-1]
        return (self.last - before) / rise


@dataclass(frozen=True)
class RunSummary:
    """``steps``: last logged training step; ``loss``: (first, last) total pretext loss, each the
    mean of up to ``window`` logged steps; ``rel_change``: last ||w - w0|| / ||w0|| of the
    backbone; ``probes``: key -> ``ProbeTrace``; ``references``: key -> value of each probe's
    reference (``probe/<task>/chance`` or ``.../pixels``) at step 0."""

    steps: int
    loss: tuple[float, float]
    rel_change: float
    probes: dict[str, ProbeTrace]
    references: dict[str, float]


def summarize_run(metrics_path: str | Path, window: int = 10) -> RunSummary:
    """``RUN_DIR/metrics.jsonl`` -> ``RunSummary`` (a torn last line is dropped).

    Raises:
        ValueError: the file holds no training step.
    """
    records = read_records(metrics_path)
    train = [r for r in records if "loss" in r]
    if not train:
        raise ValueError(f"{metrics_path} holds no training step")
    losses = [float(r["loss"]) for r in train]
    head, tail = losses[:window], losses[-window:]
    drift = [float(r["backbone/rel_change"]) for r in train if "backbone/rel_change" in r]
    series: dict[str, dict[int, float]] = {}
    references: dict[str, float] = {}
    for r in records:
        for key, value in r.items():
            if not key.startswith(PROBE_PREFIX) or value is None:
                continue
            if key.rsplit("/", 1)[-1] in ("chance", "pixels"):
                references.setdefault(key, float(value))
            else:
                series.setdefault(key, {})[int(r["step"])] = float(value)
    probes = {k: ProbeTrace(k, tuple(sorted(v)), tuple(v[s] for s in sorted(v))) for k, v in sorted(series.items())}
    return RunSummary(steps=int(train[-1]["step"]), loss=(sum(head) / len(head), sum(tail) / len(tail)),
                      rel_change=drift[-1] if drift else math.nan, probes=probes, references=references)
