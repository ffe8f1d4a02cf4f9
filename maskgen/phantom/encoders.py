"""Byte-reproducible encoders for the native file types (same input -> same bytes).

Timestamps that the formats embed are pinned: gzip mtime 0 (NIfTI), a fixed MAT-file header
text, fixed zip entry dates and document properties (xlsx).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

_FIXED_TIME = _dt.datetime(2024, 1, 1, 0, 0, 0)


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def png_bytes(array: np.ndarray) -> bytes:
    """(H, W) or (H, W, 3) uint8 -> PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray, quality: int = 92) -> bytes:
    """(H, W) uint8 -> baseline grayscale JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def nifti_gz_bytes(volume: np.ndarray, spacing: tuple[float, ...] = (0.3, 0.3, 1.0)) -> bytes:
    """uint8 volume stored as given (CAMUS: (W, H, T)) -> .nii.gz bytes with gzip mtime 0."""
    import nibabel as nib

    affine = np.diag([*spacing[: volume.ndim], 1.0][:3] + [1.0]) if volume.ndim == 3 else np.eye(4)
    img = nib.Nifti1Image(np.asarray(volume, dtype=np.uint8), affine)
    img.header.set_zooms(spacing[: volume.ndim])
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def mat_bytes(variables: dict[str, np.ndarray]) -> bytes:
    """MAT-file v5 (scipy.io.savemat, zlib-compressed) with a fixed 116-byte header text."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, variables, do_compression=True)
    data = bytearray(buf.getvalue())
    header = b"MATLAB 5.0 MAT-file, written by the ANAUS phantom"
    data[:116] = header.ljust(116, b" ")
    return bytes(data)


def xlsx_bytes(header: list[str], rows: list[list]) -> bytes:
    """One-sheet workbook (openpyxl) with pinned document times and zip entry dates."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps 'modified' at save time
                data = _pin_core_times(data)
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, data)
    return out.getvalue()


def _pin_core_times(xml: bytes) -> bytes:
    import re

    stamp = _FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>" + stamp + rb"\g<2>", xml)


def write_avi(path: Path, frames: list[np.ndarray], fps: int, codec: str = "mjpeg") -> None:
    """Grayscale (H, W) uint8 frames -> an .avi (MJPEG, full-range YUV) via PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "gray"
        if codec == "mjpeg":
            stream.options = {"qscale": "3"}
        for f in frames:
            rgb = np.repeat(f[: stream.height, : stream.width, None], 3, axis=2)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
