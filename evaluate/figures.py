"""Report figures (matplotlib, Agg): bar charts with 95% intervals, the sweep summary (per-fold
points across tasks and protocols) and qualitative overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskgen.common.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, task: str, metrics: list[str], methods: list[str],
              summaries: dict[tuple[str, str], dict]) -> None:
    """Grouped bars: one group per metric, one bar per method; error bars = 95% t interval.

    ``summaries[(method, metric)]`` holds ``mean``, ``ci_low``, ``ci_high`` (fractions).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.2 + 1.3 * len(metrics) * max(1, len(methods)) / 3, 3.2))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        means, low, high = [], [], []
        for metric in metrics:
            s = summaries.get((method, metric), {})
            m = 100 * s.get("mean", np.nan)
            means.append(m)
            low.append(m - 100 * s.get("ci_low", np.nan))
            high.append(100 * s.get("ci_high", np.nan) - m)
        x = np.arange(len(metrics)) + (i - (len(methods) - 1) / 2) * width
        err = np.nan_to_num(np.array([low, high]))
        ax.bar(x, means, width, yerr=err, capsize=3, label=method)
    ax.set_xticks(np.arange(len(metrics)), metrics)
    ax.set_ylabel("% (mean over folds, 95% CI)")
    ax.set_ylim(0, 105)
    ax.set_title(task)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def summary_figure(path: Path, panels: list[tuple[str, dict[str, dict[str, list[float]]]]],
                   methods: list[str]) -> None:
    """One row per protocol: per task, each method's fold values (dots), mean and 95% t interval.

    ``panels``: (title, {task: {method: [value per fold, fractions]}}).
    """
    from evaluate.stats import summary

    plt = _pyplot()
    panels = [(t, d) for t, d in panels if d]
    width = max(len(d) for _, d in panels) if panels else 1
    fig, axes = plt.subplots(max(1, len(panels)), 1, figsize=(1.6 + 1.5 * width, 2.6 * max(1, len(panels))),
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    step = 0.8 / max(1, len(methods))
    handles: dict[str, object] = {}  # one legend entry per method, from wherever it was first drawn
    for ax, (title, data) in zip(axes[: len(panels), 0], panels, strict=True):
        tasks = list(data)
        for j, method in enumerate(methods):
            colour = colours[j % len(colours)]
            offset = (j - (len(methods) - 1) / 2) * step
            for t, task in enumerate(tasks):
                values = 100 * np.asarray(data[task].get(method, []), dtype=float)
                if not len(values):
                    continue
                x = t + offset
                ax.scatter(np.full(len(values), x) + np.linspace(-step / 6, step / 6, len(values)), values,
                           s=8, color=colour, alpha=0.6, linewidths=0)
                s = summary(values)
                err = 0 if np.isnan(s["ci_high"]) else s["ci_high"] - s["mean"]
                bar = ax.errorbar([x], [s["mean"]], yerr=[[err], [err]], fmt="_", color=colour, capsize=3,
                                  markersize=10)
                handles.setdefault(method, bar)
        ax.set_xticks(np.arange(len(tasks)), tasks, fontsize=7)
        ax.set_ylabel("macro F1 / Dice (%)", fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_title(title, fontsize=8)
    if handles:
        order = [m for m in methods if m in handles]
        axes[0, 0].legend([handles[m] for m in order], order, fontsize=6, loc="upper left",
                          bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def overlay_grid(path: Path, task: str, kind: str, class_names: list[str],
                 overlays: dict[str, dict]) -> None:
    """Qualitative overlays of fold-0 test frames.

    Segmentation with ranked frames (``overlays[m]`` has ``rank`` and ``dice``): one row per
    method, its best, median and worst frame by Dice (truth green, prediction orange, Dice in
    the title). Otherwise rows = frames; columns = frame, truth, then each method's prediction.
    """
    if kind == "segmentation" and all("rank" in o for o in overlays.values()):
        return _ranked_overlays(path, task, overlays)
    plt = _pyplot()
    methods = list(overlays)
    first = overlays[methods[0]]
    n = len(first["images"])
    cols = 2 + len(methods)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.8 * n), squeeze=False)
    for r in range(n):
        image = first["images"][r]
        panels = [("frame", None), ("truth", first["truth"][r])]
        panels += [(m, overlays[m]["pred"][r]) for m in methods]
        for c, (title, target) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            if kind == "segmentation" and target is not None:
                _tint(ax, target, (0.1, 0.9, 0.2) if title == "truth" else (1.0, 0.3, 0.1))
            elif target is not None:
                title = f"{title}: {class_names[int(target)] if class_names else int(target)}"
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle(f"{task}: fold 0 test frames", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _tint(ax, mask: np.ndarray, colour: tuple[float, float, float], alpha: float = 0.45) -> None:
    rgba = np.zeros((*mask.shape, 4))
    rgba[mask > 0] = (*colour, alpha)
    ax.imshow(rgba)


def _ranked_overlays(path: Path, task: str, overlays: dict[str, dict]) -> None:
    plt = _pyplot()
    methods = list(overlays)
    cols = max(len(o["images"]) for o in overlays.values())
    fig, axes = plt.subplots(len(methods), cols, figsize=(1.9 * cols, 2.0 * len(methods)), squeeze=False)
    for r, method in enumerate(methods):
        o = overlays[method]
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(o["images"]):
                continue
            ax.imshow(o["images"][c], cmap="gray", vmin=0, vmax=255)
            truth = o["truth"][c] > 0
            if truth.any() and not truth.all():
                ax.contour(truth, levels=[0.5], colors=[(0.1, 0.9, 0.2)], linewidths=0.8)
            _tint(ax, o["pred"][c], (1.0, 0.3, 0.1))
            ax.set_title(f"{method}: {o['rank'][c]}, Dice {100 * float(o['dice'][c]):.1f}", fontsize=6)
    fig.suptitle(f"{task}: fold-0 test frames (truth: green outline, prediction: orange)", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
