"""What a dataset reader yields: frame references (cheap) and frames (decoded pixels).

A reader first lists ``FrameRef`` objects without decoding any pixels, deterministically
ordered; ``reader.load(ref)`` then decodes one ``Frame``. Batch jobs partition the refs
(e.g. into store chunks) and load only their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DatasetError(Exception):
    """Base class of every dataset problem reported to users."""


class DatasetRootError(DatasetError, FileNotFoundError):
    """The dataset root is missing or does not hold any accepted native layout."""

    def __init__(self, dataset: str, root: str | None, hint: str):
        self.dataset, self.root, self.hint = dataset, root, hint
        where = f"at {root}" if root else "(no --root given and the environment variable is unset)"
        super().__init__(f"dataset '{dataset}': no data found {where}. {hint}")


class CorruptFrameError(DatasetError, ValueError):
    """One file could not be decoded; the batch job records it as a failed frame and goes on."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class FrameRef:
    """A frame that a reader can load, without its pixels.

    Attributes:
        dataset: registry key (``butus``, ``camus``, ...).
        source: path of the image/video file relative to the dataset root (POSIX separators).
        index: frame index inside ``source`` (0 for still images).
        group: group key (patient, video, recording, case); folds never cut through a group.
            Datasets without one use the source itself (see the manifest's ``group_key``).
        label: class id for classification datasets (see the manifest's ``classes``), else None.
        has_mask: whether ``load`` returns an anatomy/lesion label map.
        split: an official split name when the dataset ships one (``train``/``val``/``test``).
    """

    dataset: str
    source: str
    index: int = 0
    group: str = ""
    label: int | None = None
    has_mask: bool = False
    split: str | None = None

    @property
    def frame_id(self) -> str:
        """Stable identifier: ``dataset/source#index``; unique within a dataset."""
        return f"{self.dataset}/{self.source}#{self.index}"


@dataclass
class Frame:
    """A decoded frame.

    Attributes:
        ref: where it came from.
        image: (H, W) uint8 grayscale B-mode frame (colour sources are converted to luminance).
        mask: (H, W) uint8 label map (0 background, 1..C per the manifest's ``labels``) or None.
    """

    ref: FrameRef
    image: np.ndarray
    mask: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
