"""``maskgen datasets show NAME --preview FILE``: frames as the reader decodes them, with their
ground-truth masks as contours, so a transposed volume, a flipped axis or a mask-threshold
mistake is seen before anything is trained on it.

Frames are drawn at their native size (no letter-boxing); each label of the manifest keeps one
colour and its name is written inside the mask; mask values the manifest does not list are
drawn too, in their own colour, and flagged in the caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path

import numpy as np

from maskgen.common.contact_sheet import Tile, draw_sheet
from maskgen.datasets.frames import CorruptFrameError, FrameRef

UNEXPECTED_COLOUR = 7  # palette index of mask values the manifest does not name (magenta)


def pick_refs(refs: Sequence[FrameRef], n: int, classes: dict[int, str] | None = None) -> list[FrameRef]:
    """Up to ``n`` refs spread evenly over the listing (so over videos / patients), labelled
    frames first; for classification datasets as many per class as possible."""
    pool = [r for r in refs if r.has_mask] or list(refs)
    if classes:
        by_class = [[r for r in pool if r.label == c] for c in classes]
        by_class = [group for group in by_class if group] or [pool]
    else:
        by_class = [pool]
    share = -(-n // len(by_class))
    picks = []
    for group in by_class:
        k = min(share, len(group))
        picks.append([group[i] for i in np.unique(np.linspace(0, len(group) - 1, k).round().astype(int))])
    interleaved = [r for tier in zip_longest(*picks) for r in tier if r is not None]  # classes take turns
    return interleaved[:n]


def frame_tile(reader, ref: FrameRef) -> Tile:
    """One frame of ``reader`` with its label map as one mask per manifest label (+ unexpected
    values); caption: size, group, class, split."""
    spec = reader.spec
    bits = [f"group {ref.group}"] if ref.group and ref.group != ref.source else []
    if spec.classes and ref.label is not None:
        bits.append(spec.classes.get(ref.label, f"class {ref.label}"))
    if ref.split:
        bits.append(ref.split)
    title = f"{ref.source}#{ref.index}"
    try:
        frame = reader.load(ref)
    except CorruptFrameError as err:
        return Tile(np.zeros((32, 32), np.uint8), np.zeros((0, 32, 32), bool), title, f"unreadable: {err.reason}")
    h, w = frame.image.shape
    caption = " · ".join([f"{h}x{w}", *bits])
    if frame.mask is None:
        return Tile(frame.image, np.zeros((0, h, w), bool), title, caption + " · no mask")
    values = [int(v) for v in np.unique(frame.mask) if v != 0]
    labels = list(spec.labels.items())
    unexpected = [v for v in values if v not in spec.labels]
    masks = [frame.mask == v for v, _ in labels] + [frame.mask == v for v in unexpected]
    notes = [name for _, name in labels] + [f"value {v}?" for v in unexpected]
    colours = list(range(len(labels))) + [UNEXPECTED_COLOUR] * len(unexpected)
    if unexpected:
        caption += f" · mask values {unexpected} not in the manifest"
    elif not values:
        caption += " · empty mask"
    return Tile(frame.image, np.stack(masks) if masks else np.zeros((0, h, w), bool), title, caption,
                notes=notes, colours=colours)


def dataset_preview(readers: Sequence, out: str | Path, n: int = 12, columns: int = 4) -> Path:
    """Write a contact sheet of up to ``n`` frames of the readers (shared evenly between them)
    with their ground-truth masks; returns its path."""
    if n < 1:
        raise ValueError(f"--preview-frames must be at least 1, got {n}")
    per_reader = max(1, n // len(readers))
    tiles = []
    for reader in readers:
        for ref in pick_refs(reader.refs(), per_reader, reader.spec.classes):
            tile = frame_tile(reader, ref)
            if len(readers) > 1:  # which dataset: the title keeps the end of the path
                tile.caption = f"{reader.spec.name} · {tile.caption}"
            tiles.append(tile)
    if not tiles:
        raise ValueError("no frames to preview")
    if len(readers) == 1:
        spec = readers[0].spec
        legend = {name: i for i, name in enumerate(spec.labels.values())}
        title = f"{spec.name} ({readers[0].layout}) at {readers[0].root}: {len(tiles)} of {len(readers[0].refs())} frames"
    else:
        legend = None
        title = f"{len(readers)} datasets: {', '.join(r.spec.name for r in readers)}"
    return draw_sheet(tiles, out, columns=columns, title=title + "; native size, ground-truth contours",
                      legend=legend or None)
