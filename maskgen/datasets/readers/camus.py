"""CAMUS echocardiography (2CH/4CH), 2019 MetaImage and 2023 NIfTI releases.

- ``2019``: ``{training,testing}/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].mhd`` (+ .raw)
  and ``_sequence.mhd`` (every frame, unlabelled), ``Info_{2CH,4CH}.cfg``.
- ``2023``: ``database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].nii.gz`` and
  ``_half_sequence[_gt].nii.gz`` (labels on every frame ED..ES); volumes are stored (W, H, T),
  so each frame is transposed to display upright; splits from
  ``database_split/subgroup_{training,validation,testing}.txt``.
Labels: 1 LV endocardium, 2 myocardium, 3 left atrium. Group = patient. Frame counts come
from headers only. ED/ES images are listed as their own sources beside the sequences.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef
from maskgen.datasets.readers import metaimage
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.readers.imageio import natural_key, to_gray
from maskgen.datasets.readers.optional import require

VIEWS = ("2CH", "4CH")
_PATIENT = re.compile(r"^patient\d+$")
SPLITS_2019 = {"training": "train", "testing": "test"}
SPLITS_2023 = {"training": "train", "validation": "val", "testing": "test"}


def read_info_cfg(path: Path) -> dict[str, str]:
    """``Key: Value`` lines of an ``Info_*.cfg`` file (YAML-compatible; parsed without PyYAML)."""
    info = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def _nifti_volume(path: Path) -> np.ndarray:
    """A .nii.gz as (T, H, W): stored (W, H[, T]), so axes are swapped to display upright."""
    nib = require("nibabel", "reading CAMUS NIfTI volumes")
    try:
        data = np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, zlib/gzip errors
        raise CorruptFrameError(str(path), f"cannot read NIfTI: {type(err).__name__}: {err}") from err
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise CorruptFrameError(str(path), f"expected (W, H[, T]), got shape {data.shape}")
    return np.transpose(data, (2, 1, 0))


def _nifti_frames(path: Path) -> int:
    nib = require("nibabel", "reading CAMUS NIfTI volumes")
    try:
        shape = nib.load(str(path)).shape
    except Exception as err:
        raise CorruptFrameError(str(path), f"cannot read NIfTI header: {err}") from err
    return shape[2] if len(shape) > 2 else 1


class CamusReader(DatasetReader):
    def _detect(self) -> str | None:
        self._lock, self._volumes = threading.Lock(), {}
        for cand in ("database_nifti", "CAMUS_public/database_nifti"):
            if (self.root / cand).is_dir():
                self.base = self.root / cand
                return "2023"
        for cand in (".", "CAMUS", "camus"):
            base = self.root / cand
            if any((base / s).is_dir() for s in SPLITS_2019):
                self.base = base
                return "2019"
        if any(self.root.glob("patient*/*.nii.gz")):
            self.base = self.root
            return "2023"
        return None

    def _list(self) -> list[FrameRef]:
        if self.layout == "2023":
            splits = self._splits_2023()
            patients = [(p, splits.get(p.name)) for p in self._patients(self.base)]
            suffix, seq = ".nii.gz", "half_sequence"
        else:
            patients = [(p, split) for folder, split in SPLITS_2019.items()
                        for p in self._patients(self.base / folder)]
            suffix, seq = ".mhd", "sequence"
        refs = []
        for patient, split in patients:
            for view in VIEWS:
                for part in ("ED", "ES", seq):
                    refs += self._refs_of(patient, f"{patient.name}_{view}_{part}", suffix, split)
        return refs

    def _patients(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted((p for p in folder.iterdir() if p.is_dir() and _PATIENT.match(p.name)),
                      key=lambda p: natural_key(p.name))

    def _splits_2023(self) -> dict[str, str]:
        folder = next((f for f in (self.base.parent / "database_split", self.root / "database_split")
                       if f.is_dir()), None)
        splits = {}
        for name, split in SPLITS_2023.items():
            path = folder / f"subgroup_{name}.txt" if folder else None
            if path is not None and path.is_file():
                for line in path.read_text(encoding="utf-8").split():
                    splits[line.strip()] = split
        return splits

    def _refs_of(self, patient: Path, stem: str, suffix: str, split: str | None) -> list[FrameRef]:
        image = patient / (stem + suffix)
        if not image.is_file():
            return []
        try:
            count = _nifti_frames(image) if suffix == ".nii.gz" else metaimage.frame_count(image)
        except CorruptFrameError as err:
            self.problem(image, err.reason + "; skipped")
            return []
        has_mask = (patient / f"{stem}_gt{suffix}").is_file()
        source = self.relative(image)
        return [FrameRef(self.name, source, t, group=patient.name, has_mask=has_mask, split=split)
                for t in range(count)]

    def _volume(self, path: Path) -> np.ndarray:
        """(T, H, W) volume of ``path``; the last image and label volumes stay cached."""
        with self._lock:
            if path not in self._volumes:
                if len(self._volumes) >= 2:
                    self._volumes.pop(next(iter(self._volumes)))
                is_nifti = path.name.endswith(".nii.gz")
                self._volumes[path] = _nifti_volume(path) if is_nifti else metaimage.read_volume(path)
            return self._volumes[path]

    def _load(self, ref: FrameRef) -> Frame:
        path = self.root / ref.source
        vol = self._volume(path)
        if not 0 <= ref.index < vol.shape[0]:
            raise CorruptFrameError(str(path), f"frame {ref.index} outside {vol.shape[0]} frames")
        image = to_gray(vol[ref.index])
        mask = None
        if ref.has_mask:
            suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".mhd"
            gt_path = path.with_name(path.name[: -len(suffix)] + "_gt" + suffix)
            gt = self._volume(gt_path)
            if gt.shape != vol.shape:
                raise CorruptFrameError(str(gt_path), f"labels {gt.shape} != image {vol.shape}")
            mask = gt[ref.index].astype(np.uint8)
            if mask.max() > max(self.spec.labels, default=0):
                raise CorruptFrameError(str(gt_path), f"label {mask.max()} outside {self.spec.labels}")
        view = next((v for v in VIEWS if f"_{v}_" in path.name), None)
        info = path.parent / f"Info_{view}.cfg"
        extras = {"view": view, "info": read_info_cfg(info) if info.is_file() else {}}
        return Frame(ref, image, mask, extras)
