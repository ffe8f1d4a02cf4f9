"""TG3K: ``tg3k/thyroid-image/NNNN.jpg``, ``tg3k/thyroid-mask/NNNN.jpg``, ``tg3k-trainval.json``.

The json ``{"train": [int], "val": [int]}`` indexes the integer-sorted file list. Masks are
JPEG: thresholded at > 127 (label 1 = thyroid gland). No video ids are released; the frames come
from 16 videos, so the group of a frame is its block of the integer-sorted list, cut into 16
contiguous blocks (``VIDEO_BLOCKS``). Where the numbering follows the videos, as in the phantom, a
held-out block shares at most its two ends with training frames of the same video, where a
frame-level split would hold out frames whose neighbours are trained on (TG3K is used for LP-SAM
adaptation only, never for folds).
"""

from __future__ import annotations

import json

from maskgen.datasets.frames import Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import list_images, read_binary_mask, read_gray
from maskgen.datasets.readers.sheets import stem_number

VIDEO_BLOCKS = 16  # TG3K's 3,585 frames were cut from 16 videos


def block_groups(count: int, blocks: int = VIDEO_BLOCKS) -> list[str]:
    """Group key of each of ``count`` frames of an ordered list: its contiguous block of ``blocks``
    (as equal as the count allows; fewer frames than blocks: one frame a block)."""
    return [f"block{i * blocks // count:02d}" for i in range(count)]


class Tg3kReader(DatasetReader):
    def _detect(self) -> str | None:
        for cand in ("tg3k", ".", "tg3k/tg3k"):
            base = self.root / cand
            if (base / "thyroid-image").is_dir():
                self.base = base
                return "tg3k"
        return None

    def _splits(self, count: int) -> dict[int, str]:
        """Position in the integer-sorted list -> split name (from tg3k-trainval.json)."""
        path = next((p for p in (self.base / "tg3k-trainval.json", self.root / "tg3k-trainval.json",
                                 self.base.parent / "tg3k-trainval.json") if p.is_file()), None)
        if path is None:
            self.problem(self.base / "tg3k-trainval.json", "missing: frames listed without a split")
            return {}
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
            pairs = [(int(i), split) for split in ("train", "val") for i in index.get(split, [])]
        except (ValueError, TypeError, AttributeError) as err:
            self.problem(path, f"unreadable split index: {err}")
            return {}
        splits = {}
        for i, split in pairs:
            if not 0 <= i < count:
                self.problem(path, f"{split} index {i} outside the {count} listed frames; ignored")
            else:
                splits[i] = split
        return splits

    def _list(self) -> list[FrameRef]:
        images = sorted(list_images(self.base / "thyroid-image"),
                        key=lambda p: (stem_number(p.stem) is None, stem_number(p.stem) or 0, p.name))
        splits = self._splits(len(images))
        groups = block_groups(len(images))
        refs = []
        for i, path in enumerate(images):
            has_mask = (self.base / "thyroid-mask" / path.name).is_file()
            if not has_mask:
                self.problem(path, "no thyroid-mask/ file of the same name; listed without a mask")
            source = self.relative(path)
            refs.append(FrameRef(self.name, source, 0, group=groups[i], has_mask=has_mask,
                                 split=splits.get(i)))
        return refs

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        image = read_gray(path)
        mask = read_binary_mask(self.base / "thyroid-mask" / path.name) if ref.has_mask else None
        return Frame(ref, image, mask)
