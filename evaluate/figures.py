"""Report figures (matplotlib, Agg): bar charts with 95% intervals and qualitative overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskgen.provenance import atomic_path


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


def overlay_grid(path: Path, task: str, kind: str, class_names: list[str],
                 overlays: dict[str, dict]) -> None:
    """Rows = test frames of fold 0; columns = frame, truth, then each method's prediction.

    ``overlays[method]`` holds ``images`` (n,S,S) uint8, ``truth`` and ``pred``: (n,S,S) masks
    (segmentation, drawn in colour over the frame) or (n,) class ids (classification, titles).
    """
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
                colour = (0.1, 0.9, 0.2) if title == "truth" else (1.0, 0.3, 0.1)
                rgba = np.zeros((*target.shape, 4))
                rgba[target > 0] = (*colour, 0.45)
                ax.imshow(rgba)
            elif target is not None:
                title = f"{title}: {class_names[int(target)] if class_names else int(target)}"
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.suptitle(f"{task}: fold 0 test frames", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
