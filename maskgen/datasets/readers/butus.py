"""Butterfly point-of-care frames (pretraining, no labels), in either public layout.

- ``uscl``: ``Butte/<Video>_mp4/<Video>_mp4_frame<N>.jpg``, one folder per video; group = the
  video folder (its first 3 letters, ``Reg``/``Cov``, are the class, kept in the source path).
- ``grandhack``: ``butterfly_dataset/{training,test}/<patient_int>/<view>/*.png``; group = the
  patient (``patient<int>``, shared by training and test: a conservative grouping); the view
  name stays in the source path; split = train/test.
Both may sit under the same root; their frames are then concatenated (USCL first).
"""

from __future__ import annotations

from maskgen.datasets.frames import Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import first_dir, list_images, natural_key, read_gray

GRANDHACK_SPLITS = {"training": "train", "test": "test"}


def _dirs(folder):
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))


class ButusReader(DatasetReader):
    def _detect(self) -> str | None:
        self.uscl = first_dir(self.root, ("Butte", "."), marker="")
        if self.uscl is not None and not any(p.name.endswith("_mp4") for p in _dirs(self.uscl)):
            self.uscl = None
        self.grandhack = None
        for cand in ("butterfly_dataset", "."):
            base = self.root / cand
            if any((base / s).is_dir() for s in GRANDHACK_SPLITS):
                self.grandhack = base
                break
        found = [name for name, base in (("uscl", self.uscl), ("grandhack", self.grandhack)) if base]
        return "+".join(found) or None

    def _list(self) -> list[FrameRef]:
        refs = []
        if self.uscl is not None:
            refs += self._list_uscl()
        if self.grandhack is not None:
            refs += self._list_grandhack()
        return refs

    def _list_uscl(self) -> list[FrameRef]:
        refs = []
        for video in _dirs(self.uscl):
            if not video.name.endswith("_mp4"):
                self.problem(video, "folder name does not end in _mp4; skipped")
                continue
            frames = list_images(video)
            if not frames:
                self.problem(video, "video folder holds no frames")
            refs += [FrameRef(self.name, self.relative(p), 0, group=video.name) for p in frames]
        return refs

    def _list_grandhack(self) -> list[FrameRef]:
        refs = []
        for folder, split in GRANDHACK_SPLITS.items():
            if not (self.grandhack / folder).is_dir():
                continue
            for patient in _dirs(self.grandhack / folder):
                if not patient.name.isdigit():
                    self.problem(patient, "patient folder name is not an integer; skipped")
                    continue
                for view in _dirs(patient):
                    refs += [FrameRef(self.name, self.relative(p), 0, group=f"patient{int(patient.name)}",
                                      split=split) for p in list_images(view)]
        return refs

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        view = path.parent.name if "/" in ref.source and ref.split else None
        return Frame(ref, read_gray(path), None, {"view": view} if view else {})
