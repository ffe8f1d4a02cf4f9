"""Pictures of an adaptation, linked from its report.md: held-out overlays and loss curves.

``heldout_overlays``: for every anatomy class, the best, median and worst held-out frames by
Dice (latent prompts, what ``maskgen run`` uses), the ground truth and the prediction as
contours on the frame. ``loss_curves``: the training loss per checkpoint interval of both
phases. Both PNGs are written atomically next to report.md (``figures/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maskgen.common.files import atomic_path
from maskgen.lpsam.data import PairSet
from maskgen.lpsam.evaluate import heldout_batches, overlap_scores

FIGURES = "figures"
OVERLAYS_NAME = "heldout_overlays.png"
LOSSES_NAME = "loss_curves.png"
TRUTH, PREDICTION = "#33dd55", "#ff33cc"
PICKS = ("best", "median", "worst")


@dataclass
class Example:
    """One held-out (frame, class): its index in the pair set, Dice, and the predicted mask."""

    index: int
    dice: float
    prediction: np.ndarray   # (S, S) bool


class ExamplePicker:
    """Collects, as held-out batches pass (``heldout_batches``' order, latent prompts), each
    (frame, class)'s Dice and bit-packed prediction, then picks per class its best, median and
    worst frame; frames whose ground truth lacks the class are left out. ``observe`` can ride
    along the evaluation's own pass (``maskgen.lpsam.evaluate.evaluate(observe=...)``).

    The packed predictions (S * S / 8 bytes each) go into one array per class allocated before
    the pass, sized by ``present_counts``: kept as one small array per (frame, class), they sat
    between the pass's large transient tensors and fragmented the heap, so that a 3400-frame
    test set took up to 6 GB more than without the picker (``benchmarks/bench_eval_memory.py``)."""

    def __init__(self, pairs: PairSet):
        self.names = [c.name for c in pairs.classes]
        self.held = pairs.indices(held_out=True).tolist()
        self.offset = 0
        side = pairs.images.shape[-1]
        self.packed = [np.empty((n, side, (side + 7) // 8), np.uint8) for n in present_counts(pairs)]
        self.scored: dict[str, list[tuple[float, int]]] = {n: [] for n in self.names}

    def observe(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """One batch of ``heldout_batches``: predictions and targets (B, T, S, S), validity (B, T)."""
        for b in range(pred.shape[0]):
            for t, name in enumerate(self.names):
                if valid[b, t] and target[b, t].any():
                    dice, _ = overlap_scores(pred[b, t][None], target[b, t][None])
                    self.packed[t][len(self.scored[name])] = np.packbits(pred[b, t].numpy(), axis=-1)
                    self.scored[name].append((float(dice[0]), self.held[self.offset + b]))
        self.offset += pred.shape[0]

    def picks(self) -> dict[str, list[Example]]:
        out = {}
        for t, (name, items) in enumerate(self.scored.items()):
            order = sorted(range(len(items)), key=lambda i: -items[i][0])  # stable: ties keep pass order
            chosen = sorted({0, (len(order) - 1) // 2, len(order) - 1}) if order else []
            side = self.packed[t].shape[1]
            out[name] = [Example(items[order[i]][1], items[order[i]][0],
                                 np.unpackbits(self.packed[t][order[i]], axis=-1, count=side).astype(bool))
                         for i in chosen]
        return out


def present_counts(pairs: PairSet, chunk: int = 256) -> list[int]:
    """Per anatomy class: the held-out frames of its dataset whose ground truth has the class
    (the (frame, class) pairs the held-out Dice is computed on)."""
    held = pairs.indices(held_out=True)
    labels, datasets = pairs.class_labels(), pairs.class_datasets()
    counts = [0] * len(pairs.classes)
    for start in range(0, len(held), chunk):
        idx = held[start:start + chunk]
        masks, ds = pairs.masks[idx], pairs.dataset_index[idx]
        for t in range(len(counts)):
            rows = ds == datasets[t]
            if rows.any():
                counts[t] += int((masks[rows] == labels[t]).flatten(1).any(1).sum())
    return counts


def heldout_examples(model, pairs: PairSet, device: torch.device) -> dict[str, list[Example]]:
    """Per anatomy class: its best, median and worst held-out frames by Dice (fewer when the
    class has fewer frames), from a latent-prompt pass of its own (``ExamplePicker``)."""
    picker = ExamplePicker(pairs)
    for batch in heldout_batches(model, pairs, "latent", device):
        picker.observe(*batch)
    return picker.picks()


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return out


def heldout_overlays(examples: dict[str, list[Example]], pairs: PairSet, out: Path,
                     what: str = "Held-out frames") -> Path:
    """Rows = anatomy classes, columns = best / median / worst held-out frame with the ground
    truth (green) and LP-SAM's latent-prompt mask (magenta) as contours; ``what`` names the
    frames in the title (``maskgen evaluate-adapt``: test frames)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = list(examples)
    fig, axes = plt.subplots(len(names), len(PICKS), figsize=(3 * len(PICKS), 3.15 * len(names) + 0.5),
                             squeeze=False)
    labels = pairs.class_labels()
    for r, name in enumerate(names):
        cls = pairs.classes[r]
        chosen = examples[name]
        tags = {1: ("only",), 2: ("best", "worst"), 3: PICKS}.get(len(chosen), ())
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(chosen):
                ax.axis("off")
                continue
            ex = chosen[c]
            truth = (pairs.masks[ex.index] == labels[r]).numpy()
            ax.imshow(pairs.images[ex.index].numpy(), cmap="gray", vmin=0, vmax=255)
            for mask, col in ((truth, TRUTH), (ex.prediction, PREDICTION)):
                if mask.any():
                    ax.contour(mask.astype(np.float32), levels=[0.5], colors=[col], linewidths=1.3)
            frame = pairs.frame_ids[ex.index].split("/", 1)[-1]
            frame = frame if len(frame) <= 34 else "…" + frame[-33:]
            ax.set_title(f"{tags[c]}: Dice {ex.dice:.2f}\n{frame}", fontsize=8, loc="left")
            if c == 0:
                ax.set_ylabel(f"{cls.name}\n({len(chosen)} shown)", fontsize=9)
        if not chosen:
            axes[r][0].axis("on")
            axes[r][0].set_ylabel(cls.name, fontsize=9)
            axes[r][0].text(0.5, 0.5, f"no {what.split()[0].lower()} frame\nwith this class", ha="center", va="center",
                            transform=axes[r][0].transAxes, fontsize=9)
    fig.legend(handles=[Line2D([], [], color=TRUTH, label="ground truth"),
                        Line2D([], [], color=PREDICTION, label="LP-SAM (latent prompts)")],
               loc="upper right", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(f"{what} per anatomy class (best, median, worst Dice)", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def loss_curves(phases: dict, settings: dict, out: Path) -> Path:
    """Training loss (mean per checkpoint interval) against the step, one panel per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, key, what in zip(axes, ("phase1", "phase2"), ("adapters + conv branch, GT prompts",
                                                          "latent prompt engine"), strict=True):
        history = phases.get(key, {}).get("loss_history") or []
        steps, every = phases.get(key, {}).get("steps", 0), settings.get(key, {}).get("checkpoint_every", 1)
        x = [min((i + 1) * every, steps) for i in range(len(history))]
        if history:
            ax.plot(x, history, marker="o", ms=3, color="#4c72b0")
        else:
            ax.text(0.5, 0.5, "no steps", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=f"{key[:-1]} {key[-1]}: {what}", xlabel="step", ylabel=f"loss (mean per {every} steps)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return _save(fig, out)
    finally:
        plt.close(fig)


def write_figures(out_dir: Path, model, pairs: PairSet, device: torch.device, phases: dict,
                  settings: dict) -> dict[str, str]:
    """Both figures under ``out_dir/figures``; returns {name: path relative to out_dir}."""
    folder = Path(out_dir) / FIGURES
    heldout_overlays(heldout_examples(model, pairs, device), pairs, folder / OVERLAYS_NAME)
    loss_curves(phases, settings, folder / LOSSES_NAME)
    return {"heldout_overlays": f"{FIGURES}/{OVERLAYS_NAME}", "loss_curves": f"{FIGURES}/{LOSSES_NAME}"}


def figures_markdown(figures: dict[str, str]) -> list[str]:
    """The report.md section that shows the figures (empty when none were drawn)."""
    if not figures:
        return []
    lines = ["## Pictures", ""]
    if "heldout_overlays" in figures:
        lines += ["Held-out frames per anatomy class, best / median / worst Dice (latent prompts); "
                  "green: ground truth, magenta: LP-SAM.", "",
                  f"![held-out overlays]({figures['heldout_overlays']})", ""]
    if "loss_curves" in figures:
        lines += ["Training loss per checkpoint interval, both phases.", "",
                  f"![loss curves]({figures['loss_curves']})", ""]
    return lines
