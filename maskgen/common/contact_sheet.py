"""Contact sheets: frames with their masks as light fills, solid contours and a note per mask.

Any job that has frames and masks draws a sheet from ``Tile`` objects: ``maskgen inspect``
(store masks with their scores), ``maskgen datasets show --preview`` (ground-truth masks with
their label names), before/after comparisons. Colours come from ``PALETTE`` by index, so the
same anatomy label or slot keeps its colour across tiles; a legend names them when given.
Drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskgen.common.files import atomic_path

PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
                    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
                    (170, 255, 195)], dtype=np.float32)
TILE_INCHES = 2.6
DPI = 110


@dataclass
class Tile:
    """One frame of a sheet.

    Attributes:
        image: (H, W) uint8 grayscale frame.
        masks: (M, H, W) bool masks drawn on it (M may be 0).
        title: first line above the frame (e.g. a readable frame name).
        caption: second line (e.g. row, mask count); may be empty.
        notes: M short texts written inside each mask (e.g. its score), "" for none.
        colours: M palette indices (default 0..M-1: slot order).
    """

    image: np.ndarray
    masks: np.ndarray
    title: str
    caption: str = ""
    notes: Sequence[str] = ()
    colours: Sequence[int] | None = None

    def __post_init__(self):
        if self.image.ndim != 2 or self.masks.ndim != 3 or self.masks.shape[1:] != self.image.shape:
            raise ValueError(f"tile needs an (H, W) image and (M, H, W) masks, got {self.image.shape} "
                             f"and {self.masks.shape}")
        m = len(self.masks)
        self.colours = list(self.colours) if self.colours is not None else list(range(m))
        if len(self.colours) != m or (self.notes and len(self.notes) != m):
            raise ValueError(f"{m} masks need {m} colours and {m} notes (or none)")


def colour(index: int) -> np.ndarray:
    """(3,) float RGB in [0, 1] of palette entry ``index`` (cycled)."""
    return PALETTE[index % len(PALETTE)] / 255.0


def filled(image: np.ndarray, masks: np.ndarray, colours: Sequence[int], alpha: float = 0.25) -> np.ndarray:
    """(H, W) uint8 + (M, H, W) bool -> (H, W, 3) float in [0, 1]: masks as light colour fills."""
    rgb = np.repeat(image[..., None].astype(np.float32) / 255.0, 3, axis=-1)
    for m, c in zip(masks, colours, strict=True):
        rgb[m] = rgb[m] * (1 - alpha) + colour(c) * alpha
    return rgb


def inner_point(mask: np.ndarray) -> tuple[float, float] | None:
    """(y, x) of the mask pixel farthest from its border (inside even for rings); None if empty."""
    from scipy.ndimage import distance_transform_edt

    if not mask.any():
        return None
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), mask.shape)
    return float(y), float(x)


def shorten(text: str, width: int) -> str:
    """Keep the end of a long name (the file name and frame index are what differ)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def draw_tile(ax, tile: Tile, title_chars: int = 40) -> None:
    """Draw one tile on a matplotlib axis: fills, contours, notes, two-line title."""
    ax.imshow(filled(tile.image, tile.masks, tile.colours), interpolation="nearest")
    for i, (m, c) in enumerate(zip(tile.masks, tile.colours, strict=True)):
        if not m.any():
            continue
        ax.contour(m.astype(np.float32), levels=[0.5], colors=[colour(c)], linewidths=1.2)
        note = tile.notes[i] if tile.notes else ""
        point = inner_point(m) if note else None
        if point is not None:
            ax.text(point[1], point[0], note, fontsize=6.5, color="black", ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc=colour(c), ec="none", alpha=0.85))
    caption = tile.caption if len(tile.caption) <= title_chars else tile.caption[:title_chars - 1] + "…"
    head = shorten(tile.title, title_chars) + ("\n" + caption if caption else "")
    ax.set_title(head, fontsize=7.5, color="white", loc="left", pad=3)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_sheet(tiles: Sequence[Tile], out: str | Path, columns: int = 6, title: str | None = None,
               legend: dict[str, int] | None = None) -> Path:
    """Write a PNG grid of ``tiles`` (``columns`` per row) atomically; returns its path.

    ``legend`` maps a name to its palette index (e.g. ground-truth label names).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if not tiles:
        raise ValueError("a contact sheet needs at least one frame")
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    top = 0.35 if (title or legend) else 0.1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * TILE_INCHES, rows * (TILE_INCHES + 0.45) + top),
                             squeeze=False, facecolor=(0.1, 0.1, 0.1))
    for ax in axes.flat[len(tiles):]:
        ax.axis("off")
    for ax, tile in zip(list(axes.flat)[: len(tiles)], tiles, strict=True):
        draw_tile(ax, tile)
    if title:
        fig.suptitle(title, color="white", fontsize=10, x=0.01, ha="left")
    if legend:
        handles = [Patch(facecolor=colour(i), label=name) for name, i in legend.items()]
        fig.legend(handles=handles, loc="upper right", ncol=min(len(handles), 6), fontsize=8, frameon=False,
                   labelcolor="white")
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor=fig.get_facecolor())
    plt.close(fig)
    return out
