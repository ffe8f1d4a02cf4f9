"""DDTI thyroid nodules, in any of its three native layouts.

- ``original``: flat folder of ``<case>.xml`` + ``<case>_<k>.jpg``; each ``<mark>`` holds
  ``<image>k</image>`` and ``<svg>``, a JSON list of polygons ``{"points": [{"x", "y"}]}``,
  rasterised with PIL ImageDraw (label 1). Malformed marks are recorded in ``problems`` and
  skipped (the frame is then listed without a mask), never a crash. Group = case.
- ``processed`` (TN-SCUI): ``image/<n>.PNG`` + ``mask/<n>.PNG``; no case ids (group = image).
- ``samus``: ``[ThyroidNodule-DDTI/]{img,label}/<stem>.png`` (label values {0, 1}), optional
  split files ``MainPatient/{train,val,test}.txt``; no case ids (group = image).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskgen.datasets.frames import Frame, FrameRef
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import list_images, natural_key, read_binary_mask, read_gray

_FRAME = re.compile(r"^(?P<case>.+)_(?P<k>\d+)$")
SAMUS_SPLITS = ("train", "val", "test")


def parse_polygons(svg: str) -> list[list[tuple[float, float]]]:
    """DDTI ``<svg>`` JSON -> polygons [(x, y), ...]. Raises ValueError when malformed."""
    data = json.loads(svg)
    if isinstance(data, dict):
        data = [data]
    polygons = []
    for item in data:
        points = [(float(p["x"]), float(p["y"])) for p in item["points"]]
        if len(points) < 3:
            raise ValueError(f"polygon with {len(points)} point(s)")
        polygons.append(points)
    if not polygons:
        raise ValueError("no polygon")
    return polygons


def rasterise(polygons: list[list[tuple[float, float]]], shape: tuple[int, int]) -> np.ndarray:
    """Polygons -> (H, W) uint8 {0, 1} mask (outline included)."""
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for points in polygons:
        draw.polygon(points, fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8)


class DdtiReader(DatasetReader):
    def _detect(self) -> str | None:
        for cand in ("ThyroidNodule-DDTI", "."):
            if (self.root / cand / "img").is_dir():
                self.base = self.root / cand
                return "samus"
        for cand in (".", "DDTI", "ddti"):
            base = self.root / cand
            if (base / "image").is_dir() and (base / "mask").is_dir():
                self.base = base
                return "processed"
        for cand in (".", "DDTI", "ddti"):
            if (self.root / cand).is_dir() and any((self.root / cand).glob("*.xml")):
                self.base = self.root / cand
                return "original"
        return None

    def _list(self) -> list[FrameRef]:
        self.polygons: dict[str, list] = {}
        return {"samus": self._list_samus, "processed": self._list_processed,
                "original": self._list_original}[self.layout]()

    # --- original: xml + jpg -------------------------------------------------------------
    def _marks(self, xml: Path) -> dict[int, list]:
        """Image number -> polygons of one case's xml (malformed marks recorded, skipped)."""
        try:
            tree = ET.parse(xml)
        except (ET.ParseError, OSError) as err:
            self.problem(xml, f"unreadable xml: {err}; its frames are listed without masks")
            return {}
        marks: dict[int, list] = {}
        for n, mark in enumerate(tree.getroot().iter("mark")):
            image, svg = mark.findtext("image"), mark.findtext("svg")
            try:
                k = int(str(image).strip())
                polygons = parse_polygons(svg or "")
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                self.problem(xml, f"mark {n} (image {image}): malformed svg ({err}); skipped")
                continue
            marks.setdefault(k, []).extend(polygons)
        return marks

    def _list_original(self) -> list[FrameRef]:
        frames: dict[str, list[tuple[int, Path]]] = {}
        for path in list_images(self.base):
            m = _FRAME.match(path.stem)
            if m is None:
                self.problem(path, "name is not <case>_<k>.jpg; skipped")
                continue
            frames.setdefault(m["case"], []).append((int(m["k"]), path))
        refs = []
        # regular files only: a FIFO would block the parser (readers.audit records it)
        for xml in sorted((p for p in self.base.glob("*.xml") if p.is_file()), key=lambda p: natural_key(p.name)):
            marks = self._marks(xml)
            case_frames = sorted(frames.pop(xml.stem, []))
            if not case_frames:
                self.problem(xml, "no <case>_<k>.jpg beside the xml")
            for k, path in case_frames:
                source = self.relative(path)
                if k in marks:
                    self.polygons[source] = marks[k]
                refs.append(FrameRef(self.name, source, 0, group=xml.stem, has_mask=k in marks))
            for k in sorted(set(marks) - {k for k, _ in case_frames}):
                self.problem(xml, f"mark for image {k} but no {xml.stem}_{k}.jpg")
        for case, items in sorted(frames.items(), key=lambda kv: natural_key(kv[0])):
            for _, path in sorted(items):
                self.problem(path, "no <case>.xml: listed without a mask")
                refs.append(FrameRef(self.name, self.relative(path), 0, group=case))
        return refs

    # --- processed (TN-SCUI) and SAMUS -------------------------------------------------
    def _list_pairs(self, image_dir: str, mask_dir: str, splits: dict[str, str]) -> list[FrameRef]:
        refs = []
        for path in list_images(self.base / image_dir):
            mask = self._mask_path(path, mask_dir)
            if mask is None:
                self.problem(path, f"no {mask_dir}/ file of the same stem; listed without a mask")
            source = self.relative(path)
            refs.append(FrameRef(self.name, source, 0, group=source, has_mask=mask is not None,
                                 split=splits.get(path.stem)))
        return refs

    def _mask_path(self, image: Path, mask_dir: str) -> Path | None:
        folder = self.base / mask_dir
        exact = folder / image.name
        if exact.is_file():
            return exact
        return next(iter(sorted(folder.glob(image.stem + ".*"))), None)

    def _list_processed(self) -> list[FrameRef]:
        return self._list_pairs("image", "mask", {})

    def _samus_splits(self) -> dict[str, str]:
        """Stem -> split from MainPatient/{train,val,test}.txt (tolerated when absent)."""
        folder = next((f for f in (self.base / "MainPatient", self.base.parent / "MainPatient")
                       if f.is_dir()), None)
        splits: dict[str, str] = {}
        if folder is None:
            return splits
        for split in SAMUS_SPLITS:
            path = folder / f"{split}.txt"
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = line.strip().split("/")
                # "<class>/<subset>/<stem>" (train/val) or "<subset>/<stem>" (test)
                if len(parts) >= 2 and parts[-2] != self.base.name and self.base != self.root:
                    continue
                if parts[-1]:
                    splits[Path(parts[-1]).stem if parts[-1].endswith(".png") else parts[-1]] = split
        return splits

    def _list_samus(self) -> list[FrameRef]:
        return self._list_pairs("img", "label", self._samus_splits())

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        image = read_gray(path)
        mask = None
        if ref.has_mask and self.layout == "original":
            if self._refs is None:
                self.refs()
            mask = rasterise(self.polygons[ref.source], image.shape)
        elif ref.has_mask:
            mask_dir = "label" if self.layout == "samus" else "mask"
            mask = read_binary_mask(self._mask_path(path, mask_dir))
        return Frame(ref, image, mask)
