"""POCUS lung (covid19_ultrasound repository): convex/linear videos and images.

``data/pocus_videos/{convex,linear}/`` and ``data/pocus_images/{convex,linear}/``. The class is
the file-name prefix: ``Cov`` covid19 (0), ``Pne``/``pne`` pneumonia (1), ``Reg`` regular (2);
``Vir`` (viral) is excluded from the 3-class task (listed in ``excluded``). Video frames are
sampled at 3 Hz (every ``int(fps / 3)``-th frame), at most 30 per video, using container
metadata only. Group = file name before the first '.' (video-level folds).
"""

from __future__ import annotations

from pathlib import Path

from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import IMAGE_SUFFIXES, natural_key, read_gray
from maskgen.datasets.readers.video import VIDEO_SUFFIXES, VideoFrames, video_info

SAMPLE_HZ = 3.0
MAX_FRAMES_PER_VIDEO = 30
PREFIXES = (("Cov", "covid19"), ("Pne", "pneumonia"), ("pne", "pneumonia"), ("Reg", "regular"))
PROBES = ("convex", "linear")


def sampled_indices(count: int, fps: float, hz: float = SAMPLE_HZ,
                    limit: int = MAX_FRAMES_PER_VIDEO) -> list[int]:
    """Frame indices taken from a video of ``count`` frames at ``fps``: every int(fps/hz)-th."""
    step = max(1, int(fps / hz)) if fps > 0 else 1
    return list(range(0, count, step))[:limit]


def group_of(name: str) -> str:
    """The video-level group: the file name up to its first '.'."""
    return name.split(".", 1)[0]


class PocusReader(DatasetReader):
    def _detect(self) -> str | None:
        self._video = VideoFrames()
        for cand in ("data", ".", "covid19_ultrasound/data"):
            base = self.root / cand
            if (base / "pocus_videos").is_dir() or (base / "pocus_images").is_dir():
                self.base = base
                return "pocus"
        return None

    def _class_of(self, path: Path) -> int | None:
        """Class id from the prefix; None (recorded) when excluded or unknown."""
        class_ids = {name: cid for cid, name in (self.spec.classes or {}).items()}
        for prefix, name in PREFIXES:
            if path.name.startswith(prefix):
                return class_ids[name]
        if path.name.startswith("Vir"):
            self.excluded.append((self.relative(path), "Vir (viral) is not one of the 3 classes"))
        else:
            self.problem(path, "no class prefix (Cov, Pne/pne, Reg, Vir); skipped")
        return None

    def _files(self, kind: str) -> list[Path]:
        files = []
        for probe in PROBES:
            folder = self.base / f"pocus_{kind}" / probe
            if folder.is_dir():
                files += sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                                key=lambda p: natural_key(p.name))
        return files

    def _list(self) -> list[FrameRef]:
        self.sampled: dict[str, list[int]] = {}
        refs = []
        for path in self._files("videos") + self._files("images"):
            suffix = path.suffix.lower()
            if suffix not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
                self.problem(path, "neither an image nor a video; skipped")
                continue
            label = self._class_of(path)
            if label is None:
                continue
            source = self.relative(path)
            indices = [0]
            if suffix in VIDEO_SUFFIXES:
                try:
                    indices = sampled_indices(*video_info(path))
                except CorruptFrameError as err:
                    self.problem(path, err.reason + "; skipped")
                    continue
                self.sampled[source] = indices
            refs += [FrameRef(self.name, source, i, group=group_of(path.name), label=label)
                     for i in indices]
        return refs

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return Frame(ref, read_gray(path))
        if self._refs is None:
            self.refs()
        wanted = set(self.sampled.get(ref.source, [ref.index]))
        return Frame(ref, self._video.get(path, ref.index, wanted))
