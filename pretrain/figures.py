"""Pictures of a pre-training run: ``curves.png`` (from metrics.jsonl), ``view_pair.png``
(two views of a few frames with their sampled anatomy masks and the common region), and
``draw_comparison`` of several runs (``evaluate report``'s pre-training figure).

Both are written atomically next to the run's other outputs; matplotlib with the Agg backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from maskgen.common.files import atomic_path
from pretrain.jsonl import read_records

CURVES_NAME = "curves.png"
VIEW_PAIR_NAME = "view_pair.png"


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    return (np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)) if pts else (
        np.array([]), np.array([]))


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < 3 or window < 2:
        return y
    window = min(window, len(y))
    kernel = np.ones(window) / window
    padded = np.pad(y, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


# the probe read-outs (pretrain.probe.OnlineProbe) and the references drawn beside them
PROBE_SCORES = {"knn_acc": "leave-one-group-out kNN accuracy", "dice": "dense ridge probe, held-out Dice"}
PROBE_REFERENCES = {"chance": "majority class", "pixels": "same probe on raw pixels"}


def _probe_panels(keys: list[str]) -> list[tuple[str, list[str]]]:
    """One panel per probe task: keys ``probe/<task>/<score>``."""
    panels = []
    for k in keys:
        parts = k.split("/")
        if len(parts) == 3 and parts[0] == "probe" and parts[2] in PROBE_SCORES:
            panels.append((f"online probe {parts[1]}: {PROBE_SCORES[parts[2]]}", [k]))
    return panels


def draw_curves(metrics_path: str | Path, out: str | Path, title: str = "") -> Path:
    """Panels: total loss, alignment and prediction loss per scale, each online probe, backbone
    weight change and last-BN gamma, learning rate and EMA momentum. Returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_records(metrics_path)
    keys = sorted({k for r in records for k in r})
    panels = [
        ("loss (total)", ["loss"]),
        ("alignment loss per scale (0 = coarsest)", [k for k in keys if k.startswith("align/")]),
        ("prediction loss per scale", [k for k in keys if k.startswith("pred/")]),
        *_probe_panels(keys),
        ("backbone: ||w - w0|| / ||w0||", ["backbone/rel_change"]),
        ("backbone: mean |last-BN gamma| of residual blocks", ["backbone/last_bn_gamma"]),
        ("learning rate", ["lr"]),
        ("EMA momentum", ["ema_momentum"]),
    ]
    panels = [(t, ks) for t, ks in panels if any(_series(records, k)[0].size for k in ks)]
    cols = 2
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.8 * rows), squeeze=False)
    for ax, (panel_title, ks) in zip(list(axes.flat)[: len(panels)], panels, strict=True):
        for k in ks:
            x, y = _series(records, k)
            if not x.size:
                continue
            smooth = k in ("loss",) or k.startswith(("align/", "pred/"))
            if smooth and len(y) > 20:
                ax.plot(x, y, alpha=0.25, lw=0.8)
                ax.plot(x, _smooth(y, max(3, len(y) // 20)), lw=1.5, label=k, color=ax.lines[-1].get_color())
            else:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, lw=1.5, label=k)
            if k.startswith("probe/") and len(y):
                ax.annotate(f"{y[0]:.3f} -> {y[-1]:.3f}", (x[-1], y[-1]), fontsize=8,
                            xytext=(-70, 8), textcoords="offset points")
        is_probe = panel_title.startswith("online probe")
        if is_probe:
            task = ks[0].split("/")[1]
            for ref, label in PROBE_REFERENCES.items():
                values = [r[f"probe/{task}/{ref}"] for r in records if f"probe/{task}/{ref}" in r]
                if values:
                    ax.axhline(values[0], ls="--", color="grey", lw=1, label=f"{label} {values[0]:.3f}")
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(ks) > 1 or is_probe:
            ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(out)


def draw_comparison(runs: dict[str, str | Path], out: str | Path, title: str = "") -> Path:
    """Several runs (name -> metrics.jsonl) in one figure: each online probe score, the total
    pretext loss (smoothed) and the backbone's weight change, one line per run. Returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = {name: read_records(path) for name, path in runs.items()}
    keys = sorted({k for rs in records.values() for r in rs for k in r})
    panels = [*_probe_panels(keys), ("pretext loss (total, smoothed)", ["loss"]),
              ("backbone: ||w - w0|| / ||w0||", ["backbone/rel_change"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (panel_title, (key,)) in zip(axes.flat, panels, strict=True):
        for name, rs in records.items():
            x, y = _series(rs, key)
            if not x.size:
                continue
            if key == "loss":
                ax.plot(x, _smooth(y, max(3, len(y) // 20)), lw=1.5, label=name)
            else:
                ax.plot(x, y, marker="o" if len(x) < 30 else None, ms=3, lw=1.5, label=name)
        if key.startswith("probe/"):
            task = key.split("/")[1]
            for ref, label in PROBE_REFERENCES.items():
                values = [r[f"probe/{task}/{ref}"] for rs in records.values() for r in rs
                          if f"probe/{task}/{ref}" in r]
                if values:
                    ax.axhline(values[0], ls="--", color="grey", lw=1, label=f"{label} {values[0]:.3f}")
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(out)


def draw_view_pair(frames: torch.Tensor, masks: torch.Tensor, out: str | Path, resolution: int,
                   gen: torch.Generator, views=None, max_frames: int = 4) -> Path:
    """frames (n, S, S) uint8, masks (n, K, S, S) bool (as pre-training sees them) -> a figure:
    per frame the original with its masks, view 1 and view 2 with their warped masks, and the
    common region that the prediction objective corrupts and predicts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pretrain.views import byol_view_configs, make_views

    n = min(max_frames, frames.shape[0])
    frames, masks = frames[:n], masks[:n]
    pair = make_views(frames, masks, resolution, gen, views or byol_view_configs())
    cmap = plt.get_cmap("tab20")
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    columns = ("frame + store masks", "view 1 (online/target)", "view 2", "common region (clean)")
    for i in range(n):
        panels = [(frames[i].float() / 255, masks[i].float()),
                  (pair.views[0, i, 0], pair.view_masks[0, i]),
                  (pair.views[1, i, 0], pair.view_masks[1, i]),
                  (pair.region[i, 0], pair.region_masks[i])]
        for j, (img, msk) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(img.cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            for k in range(msk.shape[0]):
                m = msk[k].cpu().numpy()
                if m.max() > 0.5:
                    ax.contour(m, levels=[0.5], colors=[cmap(k % 20)], linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=9)
        if not bool(pair.region_valid[i]):
            axes[i, 3].set_title("no overlap: no prediction target", fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return Path(out)
