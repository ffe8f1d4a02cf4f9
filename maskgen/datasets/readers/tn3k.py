"""TN3K: ``tn3k/{trainval,test}-{image,mask}/NNNN.jpg``, ``label4{trainval,test}.csv``, folds.

Masks are JPEG 0/255 with artefacts: thresholded at > 127 (label 1 = nodule). Classes come
from the csv files (0 benign, 1 malignant). ``tn3k-trainval-fold{0..4}.json`` (keys train/val)
are the official folds, exposed by ``official_folds()``. No patient ids: group = the image.
"""

from __future__ import annotations

import json

from maskgen.datasets.frames import Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import list_images, read_binary_mask, read_gray
from maskgen.datasets.readers.sheets import read_csv_rows, stem_number

SPLITS = {"trainval": "train", "test": "test"}


class Tn3kReader(DatasetReader):
    def _detect(self) -> str | None:
        for cand in ("tn3k", ".", "tn3k/tn3k"):
            base = self.root / cand
            if (base / "trainval-image").is_dir() or (base / "test-image").is_dir():
                self.base = base
                return "tn3k"
        return None

    def _labels(self, part: str, numbers: list[int | None]) -> dict[int, int]:
        """Image number -> class id from ``label4<part>.csv``."""
        path = self.base / f"label4{part}.csv"
        if not path.is_file():
            self.problem(path, "missing: frames listed without a class")
            return {}
        try:
            rows = read_csv_rows(path)
        except (OSError, UnicodeDecodeError) as err:
            self.problem(path, f"unreadable: {err}")
            return {}
        rows = [r for r in rows if r and r[-1].lstrip("-").isdigit()]  # drops a header row
        labels = {}
        for pos, row in enumerate(rows):
            # two columns: (image id, label); one column: labels in file-list order
            key = stem_number(row[0]) if len(row) > 1 else (numbers[pos] if pos < len(numbers) else None)
            value = int(row[-1])
            if key is None or value not in (self.spec.classes or {}):
                self.problem(path, f"row {row}: unreadable id/label; skipped")
                continue
            labels[key] = value
        return labels

    def _list(self) -> list[FrameRef]:
        refs = []
        for part, split in SPLITS.items():
            folder = self.base / f"{part}-image"
            if not folder.is_dir():
                continue
            images = sorted(list_images(folder), key=lambda p: (stem_number(p.stem) or 0, p.name))
            labels = self._labels(part, [stem_number(p.stem) for p in images])
            for path in images:
                has_mask = (self.base / f"{part}-mask" / path.name).is_file()
                if not has_mask:
                    self.problem(path, f"no {part}-mask/ file of the same name; listed without a mask")
                label = labels.get(stem_number(path.stem))
                if labels and label is None:
                    self.problem(path, f"not in label4{part}.csv; listed without a class")
                source = self.relative(path)
                refs.append(FrameRef(self.name, source, 0, group=source, label=label,
                                     has_mask=has_mask, split=split))
        return refs

    def official_folds(self) -> dict[str, int]:
        """Source -> official fold (0..4) of the trainval frames, from the fold json files."""
        trainval = [r.source for r in self.refs() if r.split == "train"]
        folds = {}
        for k in range(5):
            path = self.base / f"tn3k-trainval-fold{k}.json"
            if not path.is_file():
                continue
            try:
                val = json.loads(path.read_text(encoding="utf-8"))["val"]
            except (ValueError, KeyError, TypeError) as err:
                self.problem(path, f"unreadable fold file: {err}")
                continue
            for i in val:
                if 0 <= int(i) < len(trainval):
                    folds[trainval[int(i)]] = k
        return folds

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        image = read_gray(path)
        mask_dir = path.parent.name.replace("-image", "-mask")
        mask = read_binary_mask(path.parent.parent / mask_dir / path.name) if ref.has_mask else None
        return Frame(ref, image, mask)
