"""``maskgen inspect``: what is in a mask store, in numbers and in a picture.

``summarise_store`` streams the store chunk by chunk and gathers frames, failures (with their
reasons), masks per frame, score and coverage distributions and the empty or degenerate masks;
``summary_figure`` plots those distributions; ``contact_sheet`` draws frames spread over the
store with their masks (fills, contours, scores) and readable names (``maskgen.common.contact_sheet``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskgen.common.contact_sheet import Tile, draw_sheet, filled
from maskgen.common.files import atomic_path
from maskgen.store import STATUS_FAILED, MaskStore, unpack_masks

# pixels set per byte value: areas straight from the bit-packed masks
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


@dataclass
class StoreSummary:
    frames: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    masks_per_frame: Counter = field(default_factory=Counter)
    scores: list[np.ndarray] = field(default_factory=list)
    coverage: list[np.ndarray] = field(default_factory=list)
    empty_masks: list[tuple[int, int]] = field(default_factory=list)       # (row, slot)
    degenerate_masks: list[tuple[int, int, float]] = field(default_factory=list)  # (row, slot, coverage)
    datasets: Counter = field(default_factory=Counter)                     # frames per dataset

    def lines(self, k: int, size: int) -> list[str]:
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        cover = np.concatenate(self.coverage) if self.coverage else np.zeros(0)
        ok = self.frames - self.failed
        out = [f"frames: {self.frames} ({ok} ok, {self.failed} failed); K={k}, S={size}",
               "datasets: " + ", ".join(f"{name} {n}" for name, n in self.datasets.items()),
               "masks per ok frame: " + ", ".join(f"{c}: {self.masks_per_frame[c]}" for c in range(k + 1)
                                                  if self.masks_per_frame[c]),
               f"masks: {scores.size}", _quantiles("score", scores), _quantiles("coverage", cover),
               f"empty masks (valid slot, no pixel): {len(self.empty_masks)}"
               + (f" e.g. (row, slot) {self.empty_masks[:5]}" if self.empty_masks else ""),
               f"degenerate masks (< {DEGENERATE_MIN_PIXELS} px or >= {DEGENERATE_MAX_COVER:.0%} of the frame): "
               f"{len(self.degenerate_masks)}"
               + (f" e.g. (row, slot, coverage) {[(r, s, round(c, 3)) for r, s, c in self.degenerate_masks[:5]]}"
                  if self.degenerate_masks else "")]
        if self.failures:
            kinds = Counter(reason.split(" (")[0] for _, reason in self.failures)
            out.append("failure reasons: " + "; ".join(f"{n} x {kind}" for kind, n in kinds.most_common()))
            out += [f"  failed {fid}: {reason}" for fid, reason in self.failures[:10]]
        return out


DEGENERATE_MIN_PIXELS = 16
DEGENERATE_MAX_COVER = 0.9


def _quantiles(name: str, values: np.ndarray) -> str:
    if values.size == 0:
        return f"{name}: no masks"
    q = np.quantile(values, [0.0, 0.1, 0.5, 0.9, 1.0])
    return f"{name}: min {q[0]:.3f}, p10 {q[1]:.3f}, median {q[2]:.3f}, p90 {q[3]:.3f}, max {q[4]:.3f}"


def summarise_store(store: MaskStore) -> StoreSummary:
    """Stream ``store`` and gather the inspection figures (see ``StoreSummary``)."""
    summary = StoreSummary(frames=store.manifest.num_rows)
    for r in store.manifest.select(["frame_id", "dataset", "status", "reason", "mask_count"]).to_pylist():
        summary.datasets[r["dataset"]] += 1
        if r["status"] == STATUS_FAILED:
            summary.failed += 1
            summary.failures.append((r["frame_id"], r["reason"]))
        else:
            summary.masks_per_frame[r["mask_count"]] += 1
    pixels = store.size * store.size
    for start in range(0, len(store), store.chunk):
        data = store.read(start, min(start + store.chunk, len(store)))
        area = _POPCOUNT[data["masks"]].sum(axis=(-2, -1))  # (B, K)
        valid = np.arange(store.k)[None, :] < data["counts"][:, None].astype(np.int64)
        summary.scores.append(data["scores"][valid])
        summary.coverage.append(area[valid] / pixels)
        for b, s in zip(*np.nonzero(valid & (area == 0)), strict=True):
            summary.empty_masks.append((start + int(b), int(s)))
        bad = valid & (area > 0) & ((area < DEGENERATE_MIN_PIXELS) | (area >= DEGENERATE_MAX_COVER * pixels))
        for b, s in zip(*np.nonzero(bad), strict=True):
            summary.degenerate_masks.append((start + int(b), int(s), float(area[b, s] / pixels)))
    return summary


def overlay(image: np.ndarray, masks: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(S, S) uint8 frame + (M, S, S) bool masks -> (S, S, 3) uint8 with coloured masks
    (mask i in PALETTE[i % 16]; later masks drawn over earlier ones)."""
    rgb = filled(image, masks, range(len(masks)), alpha)
    return (rgb * 255).round().clip(0, 255).astype(np.uint8)


def pick_rows(store: MaskStore, n: int) -> list[int]:
    """Up to ``n`` usable rows spread evenly over the store (failed frames when none is usable)."""
    rows = store.usable_rows()
    if rows.size == 0:
        rows = np.sort(store.manifest.column("row").to_numpy())
    if rows.size <= n:
        return rows.tolist()
    return rows[np.linspace(0, rows.size - 1, n).round().astype(int)].tolist()


def store_tile(store: MaskStore, row: int, manifest_row: dict | None = None) -> Tile:
    """Row ``row`` of the store as a contact-sheet tile: its valid masks in slot colours, each
    with its score; title = the frame id's end, caption = row, mask count, status."""
    data = store.read(row, row + 1)
    count = int(data["counts"][0])
    info = manifest_row or {}
    frame_id = info.get("frame_id") or f"row {row}"
    caption = f"row {row} · {count} mask{'s' if count != 1 else ''}"
    if info.get("status") == STATUS_FAILED:
        caption += f" · failed: {info.get('reason', '')}"
    scores = data["scores"][0, :count]
    return Tile(data["images"][0], unpack_masks(data["masks"][0, :count]), frame_id, caption,
                notes=[f"{s:.2f}" for s in scores])


def contact_sheet(store: MaskStore, out: str | Path, n: int = 24, columns: int = 6) -> Path:
    """Write a PNG grid of ``n`` frames spread over the store, their masks as fills + contours in
    slot colours with each mask's score and the frame's name; returns its path."""
    rows = pick_rows(store, n)
    if not rows:
        raise ValueError(f"{store.path}: the store has no frames to draw")
    info = {r["row"]: r for r in store.manifest.select(["row", "frame_id", "status", "reason"]).to_pylist()}
    tiles = [store_tile(store, row, info.get(row)) for row in rows]
    title = (f"{store.path.name}: {len(tiles)} of {len(store)} frames; K={store.k}, S={store.size}; "
             "numbers = predicted mask quality (score), colour = slot (0 = best score)")
    return draw_sheet(tiles, out, columns=columns, title=title)


def summary_figure(summary: StoreSummary, k: int, size: int, out: str | Path, title: str = "") -> Path:
    """Write a PNG of three panels: masks per ok frame, score histogram, coverage histogram
    (log scale, degenerate thresholds marked); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.concatenate(summary.scores) if summary.scores else np.zeros(0)
    cover = np.concatenate(summary.coverage) if summary.coverage else np.zeros(0)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6))
    counts = np.arange(k + 1)
    a.bar(counts, [summary.masks_per_frame[i] for i in counts], color="#4c72b0")
    a.set(xlabel="masks per frame", ylabel="ok frames", title="masks per frame")
    a.set_xticks(counts[:: max(1, (k + 1) // 9)])
    b.hist(scores, bins=np.linspace(0, 1, 21), color="#55a868")
    b.set(xlabel="score (predicted mask quality)", ylabel="masks", title=f"scores ({scores.size} masks)", xlim=(0, 1))
    low, high = DEGENERATE_MIN_PIXELS / (size * size), DEGENERATE_MAX_COVER
    floor = min(low / 2, float(cover[cover > 0].min()) if (cover > 0).any() else low / 2)
    c.hist(np.clip(cover, floor, 1), bins=np.geomspace(floor, 1, 31), color="#c44e52")
    c.set_xscale("log")
    for x, name, side in ((low, f" < {DEGENERATE_MIN_PIXELS} px", "left"), (high, f">= {high:.0%} ", "right")):
        c.axvline(x, color="k", ls="--", lw=1)
        c.text(x, c.get_ylim()[1] * 0.95, name, fontsize=8, va="top", ha=side)
    c.set(xlabel="coverage (share of the frame, log)", ylabel="masks", title="mask coverage")
    fig.suptitle(title or f"{summary.frames} frames ({summary.frames - summary.failed} ok, {summary.failed} failed)",
                 fontsize=11)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
