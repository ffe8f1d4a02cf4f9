"""Fixture writers: tiny datasets in their exact native layouts, written into tmp_path."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, arr: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path, format=fmt, **kwargs)
    return path


def noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def disk(shape, center, radius, value=255) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2
    return (inside * value).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """(T, H, W) uint8 -> an mpeg4 video (``.avi``/``.mp4``) readable by PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.stack([f] * 3, axis=-1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_xlsx(path: Path, rows: list[list]) -> Path:
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


@pytest.fixture
def fx():
    """The fixture writers, as one namespace."""
    return SimpleNamespace(image=write_image, noise=noise, disk=disk, video=write_video, xlsx=write_xlsx)
