"""HMC-QU: LV wall in apical 4-chamber echo videos (.avi), masks over one annotated cycle.

``HMC-QU/A4C/<ECHO>.avi`` (decoded with PyAV); ``A4C.xlsx`` (column ``ECHO`` = file stem; the
3rd- and 2nd-to-last columns are the 1-based start and end frames of one cycle, the last one
marks videos with masks); ``LV Ground-truth Segmentation Masks/Mask_<ECHO>.mat`` holds
``predicted`` (F, 224, 224) covering that cycle (read with scipy.io.loadmat). Video frame
``start - 1 + f`` gets mask ``f``, resized (nearest) to the frame's size; only those frames
have ``has_mask``. Group = recording. A video has masks iff its .mat exists; a mismatch with
the xlsx mark is recorded as a problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import natural_key, resize_nearest
from maskgen.datasets.readers.optional import require
from maskgen.datasets.readers.sheets import read_sheet
from maskgen.datasets.readers.video import VIDEO_SUFFIXES, VideoFrames, video_info

MASK_DIR = "LV Ground-truth Segmentation Masks"
_NO = {"", "0", "no", "n", "false", "none", "-", "nan"}


def load_mat_masks(path: Path) -> np.ndarray:
    """``predicted`` of a ``Mask_<ECHO>.mat`` as (F, 224, 224) uint8 {0, 1}."""
    loadmat = require("scipy.io", "reading HMC-QU .mat masks").loadmat
    try:
        data = loadmat(str(path), variable_names=["predicted"])
    except (NotImplementedError, ValueError, OSError, TypeError) as err:  # v7.3 (HDF5) raises NotImplementedError
        raise CorruptFrameError(str(path), f"cannot read .mat: {type(err).__name__}: {err}") from err
    if "predicted" not in data:
        raise CorruptFrameError(str(path), "no variable 'predicted'")
    masks = np.asarray(data["predicted"])
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise CorruptFrameError(str(path), f"'predicted' has shape {masks.shape}, expected (F, 224, 224)")
    threshold = 0.5 if masks.max() <= 1 else 127
    return (masks > threshold).astype(np.uint8)


class HmcquReader(DatasetReader):
    def _detect(self) -> str | None:
        self._video, self._masks = VideoFrames(), (None, None)
        for cand in ("HMC-QU", ".", "HMC-QU/HMC-QU"):
            base = self.root / cand
            if (base / "A4C").is_dir():
                self.base = base
                return "hmcqu"
        return None

    def _cycles(self) -> dict[str, tuple[int, int, bool]]:
        """ECHO -> (start, end (1-based, inclusive), marked as having masks) from A4C.xlsx."""
        path = next((p for p in (self.base / "A4C.xlsx", self.base / "A4C" / "A4C.xlsx") if p.is_file()), None)
        if path is None:
            self.problem(self.base / "A4C.xlsx", "missing: videos listed without masks")
            return {}
        try:
            header, rows = read_sheet(path)
        except ValueError as err:
            self.problem(path, f"{err}; videos listed without masks")
            return {}
        names = [h.lower() for h in header]
        echo = names.index("echo") if "echo" in names else 0
        cycles = {}
        for row in rows:
            row = list(row) + [None] * (len(header) - len(row))
            try:
                start, end = int(row[-3]), int(row[-2])
            except (TypeError, ValueError):
                self.problem(path, f"row {row[echo]}: unreadable start/end frames; skipped")
                continue
            if row[echo] is not None:
                cycles[str(row[echo]).strip()] = (start, end, str(row[-1] or "").strip().lower() not in _NO)
        return cycles

    def _list(self) -> list[FrameRef]:
        cycles = self._cycles()
        self.cycle_of: dict[str, tuple[int, int]] = {}
        self.mask_path: dict[str, Path] = {}
        videos = sorted((p for p in (self.base / "A4C").iterdir()  # a FIFO would block the decoder
                         if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()), key=lambda p: natural_key(p.name))
        refs = []
        for video in videos:
            try:
                count, _ = video_info(video)
            except CorruptFrameError as err:
                self.problem(video, err.reason + "; skipped")
                continue
            labelled = self._labelled_range(video, cycles.get(video.stem), count)
            source = self.relative(video)
            refs += [FrameRef(self.name, source, i, group=video.stem, has_mask=i in labelled)
                     for i in range(count)]
        return refs

    def _labelled_range(self, video: Path, cycle, count: int) -> range:
        mat = self.base / MASK_DIR / f"Mask_{video.stem}.mat"
        if not mat.is_file():
            if cycle and cycle[2]:
                self.problem(video, f"marked as annotated in A4C.xlsx but {MASK_DIR}/{mat.name} is missing")
            return range(0)
        if cycle is None:
            self.problem(mat, f"no A4C.xlsx row for {video.stem}: cycle unknown, masks unused")
            return range(0)
        start, end, marked = cycle
        if not marked:
            self.problem(mat, "mask file exists but A4C.xlsx does not mark the video; masks used")
        if not 1 <= start <= end <= count:
            self.problem(mat, f"cycle {start}..{end} outside the video's {count} frames; masks unused")
            return range(0)
        self.cycle_of[self.relative(video)] = (start, end)
        self.mask_path[self.relative(video)] = mat
        return range(start - 1, end)

    def _load(self, ref: FrameRef) -> Frame:
        if self._refs is None:
            self.refs()
        image = self._video.get(self.root / ref.source, ref.index)
        mask = None
        if ref.has_mask:
            path = self.mask_path[ref.source]
            cached = self._masks
            if cached[0] != path:
                cached = self._masks = (path, load_mat_masks(path))
            masks = cached[1]
            start, end = self.cycle_of[ref.source]
            if masks.shape[0] != end - start + 1:
                raise CorruptFrameError(str(path), f"{masks.shape[0]} masks for the {end - start + 1} "
                                                   f"frames of cycle {start}..{end}")
            mask = resize_nearest(masks[ref.index - (start - 1)], image.shape)
        return Frame(ref, image, mask, {"cycle": self.cycle_of.get(ref.source)})
