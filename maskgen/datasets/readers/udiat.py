"""UDIAT Dataset B: ``original/NNNNNN.png``, ``GT/NNNNNN.png`` (> 127), ``DatasetB.xlsx``.

Classes come from the xlsx columns ``Image`` and ``Type`` (Benign/Malignant), read with
openpyxl. No patient ids are released: the group is the image itself.
"""

from __future__ import annotations

from pathlib import Path

from maskgen.datasets.frames import Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import list_images, read_binary_mask, read_gray
from maskgen.datasets.readers.sheets import read_sheet, stem_number


class UdiatReader(DatasetReader):
    def _detect(self) -> str | None:
        for cand in (".", "DatasetB", "BUS_Dataset_B", "Dataset B"):
            base = self.root / cand
            if (base / "original").is_dir():
                self.base = base
                return "udiat"
        return None

    def _types(self) -> dict[int, int]:
        """Image number -> class id from DatasetB.xlsx (problems recorded)."""
        path = next((p for p in (self.base / "DatasetB.xlsx", self.root / "DatasetB.xlsx") if p.exists()), None)
        if path is None:
            self.problem(self.base / "DatasetB.xlsx", "missing: frames listed without a class")
            return {}
        class_ids = {name: cid for cid, name in (self.spec.classes or {}).items()}
        try:
            header, rows = read_sheet(path)
        except ValueError as err:
            self.problem(path, str(err))
            return {}
        cols = {h.lower(): i for i, h in enumerate(header)}
        if "image" not in cols or "type" not in cols:
            self.problem(path, f"columns Image and Type expected, found {header}")
            return {}
        types = {}
        for row in rows:
            number = stem_number(row[cols["image"]])
            kind = str(row[cols["type"]] or "").strip().lower()
            if number is None or kind not in class_ids:
                self.problem(path, f"row {row}: unreadable Image/Type; skipped")
                continue
            types[number] = class_ids[kind]
        return types

    def _list(self) -> list[FrameRef]:
        types = self._types()
        refs = []
        for path in list_images(self.base / "original"):
            source = self.relative(path)
            gt = self._gt(path)
            if gt is None:
                self.problem(path, "no GT/ mask of the same name; listed without a mask")
            label = types.get(stem_number(path.stem))
            if types and label is None:
                self.problem(path, "not in DatasetB.xlsx; listed without a class")
            refs.append(FrameRef(self.name, source, 0, group=source, label=label, has_mask=gt is not None))
        return refs

    def _gt(self, image: Path) -> Path | None:
        for cand in (self.base / "GT" / image.name, *sorted((self.base / "GT").glob(image.stem + ".*"))):
            if cand.is_file():
                return cand
        return None

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        image = read_gray(path)
        mask = read_binary_mask(self._gt(path)) if ref.has_mask else None
        return Frame(ref, image, mask)
