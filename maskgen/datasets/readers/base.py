"""The reader interface every dataset implements.

A reader is built on a root folder; it detects the native layout (raising DatasetRootError
when none matches), lists ``FrameRef`` objects without decoding pixels (``refs()``, cached,
deterministically ordered) and decodes one ``Frame`` per ``load(ref)``. Files that cannot be
listed are recorded in ``problems`` as (path relative to root, reason); files that cannot be
decoded raise ``CorruptFrameError`` with their path.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections import Counter
from pathlib import Path

from maskgen.datasets.frames import CorruptFrameError, DatasetRootError, Frame, FrameRef
from maskgen.datasets.spec import DatasetSpec

log = logging.getLogger(__name__)


class DatasetReader(abc.ABC):
    """Base class: subclasses implement ``_detect`` (layout name), ``_list`` and ``_load``.

    Attributes:
        root: the dataset root folder.
        spec: the dataset's manifest.
        layout: the native layout detected under ``root`` (e.g. ``"samus"``).
        problems: (path relative to root, reason) for every file skipped while listing.
        excluded: (path, reason) for files left out on purpose by the protocol (e.g. POCUS Vir).
    """

    def __init__(self, root: str | Path, spec: DatasetSpec):
        self.root = Path(root)
        self.spec = spec
        self.problems: list[tuple[str, str]] = []
        self.excluded: list[tuple[str, str]] = []
        self._refs: list[FrameRef] | None = None
        self._listing = threading.Lock()
        layout = self._detect()
        if not layout:
            raise DatasetRootError(spec.name, str(self.root),
                                   "No accepted native layout found there. " + spec.root_hint())
        self.layout = layout

    @property
    def name(self) -> str:
        return self.spec.name

    def refs(self) -> list[FrameRef]:
        """Every frame, deterministically ordered; no pixel decoding (cached after the first call)."""
        with self._listing:
            if self._refs is None:
                self._refs = list(self._list())
                self._record_odd_entries()
                log.info("%s: %d frames listed under %s (layout %s)", self.name, len(self._refs),
                         self.root, self.layout)
                if self.problems:
                    log.warning("%s: %d file(s) skipped or listed without a mask while listing; "
                                "see reader.problems (first: %s: %s)", self.name, len(self.problems),
                                *self.problems[0])
        return list(self._refs)

    def _record_odd_entries(self) -> None:
        """Record what no reader can read (symlink loops, FIFOs, ...; ``readers.audit``)."""
        from maskgen.datasets.readers.audit import odd_entries

        known = {path for path, _ in self.problems}
        for path, reason in odd_entries(self.root):
            if self.relative(path) not in known:
                self.problem(path, reason)

    def load(self, ref: FrameRef) -> Frame:
        """Decode one frame: image (H, W) uint8; mask (H, W) uint8 label map or None.

        Raises:
            CorruptFrameError: the file (named in the error) cannot be decoded.
            ValueError: ``ref`` belongs to another dataset.
        """
        if ref.dataset != self.name:
            raise ValueError(f"frame {ref.frame_id} is not from dataset '{self.name}'")
        try:
            frame = self._load(ref)
        except CorruptFrameError:
            raise
        except (OSError, ValueError, KeyError, IndexError, EOFError, MemoryError) as err:
            raise CorruptFrameError(str(self.root / ref.source), f"{type(err).__name__}: {err}") from err
        self._check(frame)
        return frame

    def problem(self, path: Path | str, reason: str) -> None:
        """Record a file skipped (or partly skipped) while listing."""
        self.problems.append((self.relative(path), reason))

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the root, POSIX separators (``path`` unchanged if outside)."""
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def summary(self) -> dict:
        """Counts for ``maskgen datasets show``: frames, labelled, groups, classes, splits."""
        refs = self.refs()
        classes = Counter(r.label for r in refs if r.label is not None)
        names = self.spec.classes or {}
        return {
            "dataset": self.name, "root": str(self.root), "layout": self.layout,
            "frames": len(refs), "labelled_frames": sum(r.has_mask for r in refs),
            "groups": len({r.group for r in refs}), "sources": len({r.source for r in refs}),
            "classes": {names.get(c, str(c)): n for c, n in sorted(classes.items())},
            "splits": dict(sorted(Counter(r.split or "-" for r in refs).items())),
            "problems": list(self.problems), "excluded": list(self.excluded),
        }

    def _check(self, frame: Frame) -> None:
        path = str(self.root / frame.ref.source)
        image, mask = frame.image, frame.mask
        if image.ndim != 2 or image.dtype.name != "uint8":
            raise CorruptFrameError(path, f"decoded image is {image.dtype}{image.shape}, not (H, W) uint8")
        if mask is not None:
            if mask.shape != image.shape:
                raise CorruptFrameError(path, f"mask {mask.shape} and image {image.shape} differ in size")
            if mask.dtype.name != "uint8":
                raise CorruptFrameError(path, f"mask dtype {mask.dtype}, expected uint8")

    @abc.abstractmethod
    def _detect(self) -> str | None:
        """The layout found under ``self.root`` (set any paths it needs), or None."""

    @abc.abstractmethod
    def _list(self) -> list[FrameRef]:
        """Every frame, deterministically ordered, recording problems."""

    @abc.abstractmethod
    def _load(self, ref: FrameRef) -> Frame:
        """Decode ``ref`` (may raise OSError/ValueError: wrapped into CorruptFrameError)."""
