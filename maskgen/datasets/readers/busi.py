"""BUSI: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/<cls> (<n>).png`` + ``_mask[_k].png``.

Images may be RGB (converted to luminance); masks are 0/255 and a second or third lesion
comes as ``_mask_1.png``, ``_mask_2.png``: all of an image's masks are OR-merged into label 1.
No patient ids are released (group = the image itself); duplicate images across classes exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import is_image, natural_key, read_binary_mask, read_gray

CLASS_DIRS = ("benign", "malignant", "normal")
_MASK = re.compile(r"^(?P<stem>.+)_mask(?:_(?P<k>\d+))?$")


class BusiReader(DatasetReader):
    def _detect(self) -> str | None:
        for cand in ("Dataset_BUSI_with_GT", "."):
            base = self.root / cand
            if any((base / c).is_dir() for c in CLASS_DIRS):
                self.base = base
                return "busi"
        return None

    def _list(self) -> list[FrameRef]:
        class_ids = {name: cid for cid, name in (self.spec.classes or {}).items()}
        self.masks: dict[str, list[Path]] = {}
        refs = []
        for cls in CLASS_DIRS:
            folder = self.base / cls
            if not folder.is_dir():
                self.problem(folder, "class folder missing")
                continue
            images, masks = {}, {}
            for p in folder.iterdir():
                if not is_image(p):
                    continue
                m = _MASK.match(p.stem)
                if m:
                    masks.setdefault(m["stem"], []).append(p)
                else:
                    images[p.stem] = p
            for stem in set(masks) - set(images):
                for p in masks[stem]:
                    self.problem(p, "mask without an image; skipped")
            for stem in sorted(images, key=natural_key):
                path = images[stem]
                found = sorted(masks.get(stem, []), key=lambda p: natural_key(p.name))
                if not found:
                    self.problem(path, "no _mask.png beside the image; listed without a mask")
                source = self.relative(path)
                self.masks[source] = found
                refs.append(FrameRef(self.name, source, 0, group=source, label=class_ids[cls],
                                     has_mask=bool(found)))
        return refs

    def _load(self, ref: FrameRef) -> Frame:
        if self._refs is None:
            self.refs()
        image = read_gray(self.root / ref.source)
        mask = None
        if ref.has_mask:
            mask = np.zeros(image.shape, np.uint8)
            for path in self.masks[ref.source]:
                part = read_binary_mask(path)
                if part.shape != image.shape:
                    raise CorruptFrameError(str(path), f"mask {part.shape} != image {image.shape}")
                mask |= part
        files = [self.relative(p) for p in self.masks.get(ref.source, [])]
        return Frame(ref, image, mask, {"mask_files": files})
