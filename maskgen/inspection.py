"""``maskgen inspect``: what is in a mask store, in numbers and in a picture.

``summarise_store`` streams the store chunk by chunk and gathers frames, failures (with their
reasons), masks per frame, score and coverage distributions and the empty or degenerate masks;
``contact_sheet`` draws frames with coloured mask overlays into one PNG.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskgen.provenance import atomic_path
from maskgen.store import STATUS_FAILED, MaskStore, unpack_masks

# pixels set per byte value: areas straight from the bit-packed masks
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
                    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
                    (170, 255, 195)], dtype=np.float32)


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

    def lines(self, k: int, size: int) -> list[str]:
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        cover = np.concatenate(self.coverage) if self.coverage else np.zeros(0)
        ok = self.frames - self.failed
        out = [f"frames: {self.frames} ({ok} ok, {self.failed} failed); K={k}, S={size}",
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
    for r in store.manifest.select(["frame_id", "status", "reason", "mask_count"]).to_pylist():
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
    rgb = np.repeat(image[..., None].astype(np.float32), 3, axis=-1)
    for i, m in enumerate(masks):
        rgb[m] = rgb[m] * (1 - alpha) + PALETTE[i % len(PALETTE)] * alpha
    return rgb.round().clip(0, 255).astype(np.uint8)


def pick_rows(store: MaskStore, n: int) -> list[int]:
    """Up to ``n`` usable rows spread evenly over the store (failed frames when none is usable)."""
    rows = store.usable_rows()
    if rows.size == 0:
        rows = np.sort(store.manifest.column("row").to_numpy())
    if rows.size <= n:
        return rows.tolist()
    return rows[np.linspace(0, rows.size - 1, n).round().astype(int)].tolist()


def contact_sheet(store: MaskStore, out: str | Path, n: int = 24, columns: int = 6, tile: int = 192) -> Path:
    """Write a PNG grid of ``n`` frames with their masks overlaid; returns its path."""
    rows = pick_rows(store, n)
    if not rows:
        raise ValueError(f"{store.path}: the store has no frames to draw")
    ids = dict(zip(store.manifest.column("row").to_pylist(), store.manifest.column("frame_id").to_pylist(),
                   strict=True))
    cols = min(columns, len(rows))
    sheet = Image.new("RGB", (cols * tile, -(-len(rows) // cols) * (tile + 14)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        data = store.read(row, row + 1)
        count = int(data["counts"][0])
        rgb = overlay(data["images"][0], unpack_masks(data["masks"][0, :count]))
        x, y = (i % cols) * tile, (i // cols) * (tile + 14)
        sheet.paste(Image.fromarray(rgb).resize((tile, tile), Image.BILINEAR), (x, y + 14))
        name = ids.get(row, "").rsplit("/", 1)[-1]  # file name and frame index: the end is what differs
        label = f"{row}: {count} masks  {name}"
        draw.text((x + 2, y + 1), label[: tile // 6], fill=(235, 235, 235))
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
