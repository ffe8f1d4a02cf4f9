"""Fake registry readers for the evaluate tests: tiny, deterministic, learnable frames."""

from __future__ import annotations

import numpy as np
import pytest

from evaluate.profiles import Profile
from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef


class FakeReader:
    """A registry-like reader of ``n`` small frames (H=40, W=48), ``per_group`` frames per group.

    Classification: class c shows a disc of brightness 80 + 80 c (class 2: no lesion-like
    disc but a bright band). Segmentation: a bright disc whose mask is the label map (1).
    ``corrupt`` lists frame indices whose load raises CorruptFrameError.
    """

    def __init__(self, dataset: str, n: int = 30, kind: str = "classification",
                 corrupt: tuple[int, ...] = (), empty: tuple[int, ...] = (), per_group: int = 2):
        self.dataset, self.n, self.kind, self.per_group = dataset, n, kind, per_group
        self.corrupt, self.empty = set(corrupt), set(empty)
        self.problems = [("broken.png", "not an image")]
        self.loads = 0

    def refs(self) -> list[FrameRef]:
        classification = self.kind == "classification"
        return [FrameRef(self.dataset, f"img/{i:03d}.png", 0, f"g{i // self.per_group}",
                         i % 3 if classification else None, not classification) for i in range(self.n)]

    def load(self, ref: FrameRef) -> Frame:
        self.loads += 1
        i = int(ref.source[4:7])
        if i in self.corrupt:
            raise CorruptFrameError(ref.source, "truncated file")
        rng = np.random.default_rng(i)
        image = rng.integers(0, 60, size=(40, 48)).astype(np.uint8)
        yy, xx = np.mgrid[:40, :48]
        cy, cx, r = rng.integers(12, 28), rng.integers(12, 36), rng.integers(6, 10)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if self.kind == "classification":
            if ref.label == 2:
                image[16:24] = 220
            else:
                image[disc] = 80 + 80 * ref.label
            return Frame(ref, image, None)
        mask = np.zeros((40, 48), np.uint8)
        if i not in self.empty:
            image[disc] = 200
            mask[disc] = 1
        return Frame(ref, image, mask)


@pytest.fixture
def fake_opener():
    """(dataset, root) -> FakeReader; classification for pocus, segmentation otherwise."""
    readers = {}

    def opener(dataset, root):
        kind = "classification" if dataset == "pocus" else "segmentation"
        # udiat, like the real one, has no group key: one frame per group
        readers[dataset] = FakeReader(dataset, 30, kind, per_group=1 if dataset == "udiat" else 2)
        return readers[dataset]

    opener.readers = readers
    return opener


@pytest.fixture
def tiny_profile() -> Profile:
    return Profile(name="tiny", resolution=32, max_frames=0, cls_epochs=3, seg_epochs=2, batch_size=8,
                   seg_head="fpn", seg_lr=0.05, cls_lr=0.001, overlay_frames=2)
