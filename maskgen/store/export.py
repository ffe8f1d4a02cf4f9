"""``maskgen export-masks``: a store's masks as image files that annotation and review tools open.

OUT/
  images/NAME.png|.nii.gz        the frame as the store holds it (S x S, letter-boxed), or with
                                 ``geometry="original"`` mapped back to its original size
  labels/NAME.png|.nii.gz        label image: at every pixel slot + 1 of the best-scoring mask
                                 covering it (slots are in descending score), 0 where none does
  masks/NAME_slotKK.png|.nii.gz  one binary file per mask (PNG 0/255, NIfTI 0/1): the full mask,
                                 overlaps kept (``per_mask=False`` skips them)
  index.csv                      one row per mask: frame_id, row, slot, score, file, dataset,
                                 source, label_file, label, pixels, visible_pixels
  frames.csv                     one row per frame: frame_id, row, status, reason, mask_count,
                                 image_file, label_file (failed frames: no files)
  labelmap.txt                   label value -> name and colour (PASCAL VOC / CVAT style)
  itksnap_labels.txt             the same as an ITK-SNAP label description file
  export.json                    what made the folder (store, its manifest sha256, LP-SAM sha256)

Masks of one frame may overlap; a label image holds one value per pixel, so it shows each
pixel's dominant (best-scoring) mask and ``visible_pixels`` says how much of every mask it
shows; the per-mask files keep every mask whole. PNG label images are paletted (values are the
labels, viewers show colours). NIfTI files are 2-D (W, H, 1) uint8 volumes of 1 mm pixels whose
affine is diag(-1, -1, 1), ITK's identity direction: ITK-SNAP, 3D Slicer and SimpleITK show
them upright, array[row, col] as in the PNG.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from maskgen.common.contact_sheet import PALETTE
from maskgen.common.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    sha256_file,
)
from maskgen.datasets.letterbox import Letterbox, unletterbox
from maskgen.store import MANIFEST_NAME, STATUS_FAILED, MaskStore, unpack_masks

FORMATS = {"png": ".png", "nifti": ".nii.gz"}
GEOMETRIES = ("store", "original")
INDEX_COLUMNS = ("frame_id", "row", "slot", "score", "file", "dataset", "source", "label_file", "label",
                 "pixels", "visible_pixels")
FRAME_COLUMNS = ("frame_id", "row", "status", "reason", "mask_count", "image_file", "label_file")
NIFTI_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])


class ExportError(ValueError):
    """Bad export options or an output folder that is not safe to write into."""


@dataclass(frozen=True)
class ExportOptions:
    """fmt: png | nifti; geometry: store (S x S) | original (each frame's own size);
    per_mask: also one binary file per mask; limit: only the first N frames (by row)."""

    fmt: str = "png"
    geometry: str = "store"
    per_mask: bool = True
    limit: int | None = None

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise ExportError(f"--format {self.fmt!r}: choose one of {', '.join(FORMATS)}")
        if self.geometry not in GEOMETRIES:
            raise ExportError(f"--geometry {self.geometry!r}: choose one of {', '.join(GEOMETRIES)}")
        if self.limit is not None and self.limit < 1:
            raise ExportError(f"--limit must be at least 1, got {self.limit}")


def file_stem(row: int, frame_id: str) -> str:
    """A safe, unique, sortable file name for a frame: ``000012_butus_video0_frame003.png_i0``."""
    dataset, _, rest = frame_id.partition("/")
    source, _, index = rest.rpartition("#")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}_{source.replace('/', '_')}_i{index}").strip("_")
    return f"{row:06d}_{slug[-80:]}"


def dominant_labels(masks: np.ndarray) -> np.ndarray:
    """(M, H, W) bool masks in descending score -> (H, W) uint8: slot + 1 of the first mask
    covering each pixel, 0 where none does."""
    if len(masks) == 0:
        return np.zeros(masks.shape[1:], np.uint8)
    any_mask = masks.any(0)
    return np.where(any_mask, masks.argmax(0) + 1, 0).astype(np.uint8)


def _png_bytes(array: np.ndarray, palette: bool = False) -> bytes:
    img = Image.fromarray(array)
    if palette:  # label values stay the pixel values; viewers show the palette colours
        img = img.convert("P")
        colours = [0, 0, 0] + [int(c) for i in range(255) for c in PALETTE[i % len(PALETTE)]]
        img.putpalette(colours)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _nifti_bytes(array: np.ndarray) -> bytes:
    """(H, W) -> gzip'd NIfTI-1 bytes of a (W, H, 1) volume with ITK's identity direction."""
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(array.T[:, :, None]), NIFTI_AFFINE)
    img.header.set_xyzt_units("mm")
    img.set_qform(NIFTI_AFFINE, code=1)
    img.set_sform(NIFTI_AFFINE, code=1)
    return gzip.compress(img.to_bytes(), mtime=0)  # mtime 0: the same masks give the same bytes


def encoder(fmt: str) -> Callable[[np.ndarray, bool], bytes]:
    """(H, W) uint8 array, is-label flag -> file bytes of the format."""
    if fmt == "png":
        return lambda a, label: _png_bytes(a, palette=label)
    return lambda a, label: _nifti_bytes(a)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty OUT unless ``overwrite`` (and never a file)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"--out {out} is not empty; choose a new folder or pass --overwrite")


def _geometry(image, masks, info, geometry):
    if geometry == "store":
        return image, masks
    box = Letterbox.fit(int(info["orig_height"]), int(info["orig_width"]), image.shape[0])
    back = [unletterbox(m.astype(np.uint8), box).astype(bool) for m in masks]
    return unletterbox(image, box), np.stack(back) if back else np.zeros((0, box.height, box.width), bool)


def export_frame(out: Path, stem: str, image: np.ndarray, masks: np.ndarray, scores: np.ndarray,
                 info: dict, options: ExportOptions) -> tuple[dict, list[dict]]:
    """Write one frame's image, label image and per-mask files; return its frames.csv row and
    its index.csv rows. image (H, W) uint8, masks (M, H, W) bool, scores (M,) float32."""
    ext, encode = FORMATS[options.fmt], encoder(options.fmt)
    image, masks = _geometry(image, masks, info, options.geometry)
    labels = dominant_labels(masks)
    image_file, label_file = f"images/{stem}{ext}", f"labels/{stem}{ext}"
    atomic_write_bytes(out / image_file, encode(image, False))
    atomic_write_bytes(out / label_file, encode(labels, True))
    rows = []
    for slot, (mask, score) in enumerate(zip(masks, scores, strict=True)):
        mask_file = f"masks/{stem}_slot{slot:02d}{ext}"
        if options.per_mask:
            scale = 255 if options.fmt == "png" else 1
            atomic_write_bytes(out / mask_file, encode(mask.astype(np.uint8) * scale, False))
        rows.append({"frame_id": info["frame_id"], "row": info["row"], "slot": slot, "score": round(float(score), 6),
                     "file": mask_file if options.per_mask else label_file, "dataset": info["dataset"],
                     "source": info["source"], "label_file": label_file, "label": slot + 1,
                     "pixels": int(mask.sum()), "visible_pixels": int((labels == slot + 1).sum())})
    frame = {"frame_id": info["frame_id"], "row": info["row"], "status": info["status"], "reason": info["reason"],
             "mask_count": len(masks), "image_file": image_file, "label_file": label_file}
    return frame, rows


def _write_csv(path: Path, columns, rows) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _write_label_tables(out: Path, k: int) -> None:
    names = ["background"] + [f"slot{s:02d}" + (" (best score)" if s == 0 else "") for s in range(k)]
    colours = [(0, 0, 0)] + [tuple(int(c) for c in PALETTE[s % len(PALETTE)]) for s in range(k)]
    voc = ["# label:color_rgb:parts:actions"] + [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip(names, colours, strict=True)]
    atomic_write_text(out / "labelmap.txt", "\n".join(voc) + "\n")
    snap = ["# ITK-SnAP Label Description File", "# IDX  -R-  -G-  -B-  -A--  VIS MSH  LABEL"]
    snap += [f"{i:5d} {r:4d} {g:4d} {b:4d} {1 if i else 0:5d} {1 if i else 0:4d} {1 if i else 0:3d}  \"{n}\""
             for i, (n, (r, g, b)) in enumerate(zip(names, colours, strict=True))]
    atomic_write_text(out / "itksnap_labels.txt", "\n".join(snap) + "\n")


def export_masks(store: MaskStore, out: str | os.PathLike, options: ExportOptions, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Export ``store`` into ``out`` (see the module docstring); returns export.json's content.

    The store is only read (``MaskStore.read``, chunk by chunk); failed frames get a frames.csv
    row and no files. index.csv and frames.csv are written last: a folder without them is an
    interrupted export.
    """
    out = Path(out)
    check_out(out, overwrite)
    if store.k > 254:
        raise ExportError(f"K={store.k} masks do not fit a uint8 label image")
    manifest = sorted(store.manifest.to_pylist(), key=lambda r: r["row"])
    if options.limit is not None:
        manifest = manifest[: options.limit]
    frames, index = [], []
    bar = tqdm(total=len(manifest), desc="exporting masks", unit="frame", disable=not progress)
    for start in range(0, len(manifest), store.chunk):
        batch = manifest[start:start + store.chunk]
        data = store.read(batch[0]["row"], batch[-1]["row"] + 1)
        for info in batch:
            b = info["row"] - batch[0]["row"]
            if info["status"] == STATUS_FAILED:
                frames.append({"frame_id": info["frame_id"], "row": info["row"], "status": info["status"],
                               "reason": info["reason"], "mask_count": 0, "image_file": "", "label_file": ""})
            else:
                count = int(data["counts"][b])
                frame, rows = export_frame(out, file_stem(info["row"], info["frame_id"]), data["images"][b],
                                           unpack_masks(data["masks"][b, :count]), data["scores"][b, :count],
                                           info, options)
                frames.append(frame)
                index += rows
            bar.update(1)
    bar.close()
    _write_label_tables(out, store.k)
    info = {"store": str(store.path.resolve()), "manifest_sha256": sha256_file(store.path / MANIFEST_NAME),
            "lpsam_checkpoint_sha256": store.attrs.get("lpsam_checkpoint_sha256"), "k": store.k,
            "size": store.size, "format": options.fmt, "geometry": options.geometry, "per_mask": options.per_mask,
            "frames": len(frames), "exported_frames": sum(1 for f in frames if f["image_file"]),
            "masks": len(index), "label_image": "slot + 1 of the best-scoring mask at each pixel; 0: none",
            "nifti_affine": NIFTI_AFFINE.tolist() if options.fmt == "nifti" else None}
    atomic_write_json(out / "export.json", info)
    _write_csv(out / "frames.csv", FRAME_COLUMNS, frames)
    _write_csv(out / "index.csv", INDEX_COLUMNS, index)
    return info

