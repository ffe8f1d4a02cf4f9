"""Video access through PyAV (FFmpeg bindings with bundled wheels: .avi, .mp4, .mov, .gif ...).

``video_info`` reads the frame count and rate from container metadata (falling back to
counting packets, never decoding), so listing stays fast. ``VideoFrames`` decodes the frames
a reader asks for and keeps the last video, since batch jobs load a video's frames in order.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from maskgen.datasets.frames import CorruptFrameError
from maskgen.datasets.readers.optional import require

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mov", ".mpeg", ".mpg", ".m4v", ".gif", ".webm", ".mkv"})


def _av():
    # imported lazily: listing the registry must not pay for FFmpeg
    return require("av", "reading videos (HMC-QU .avi, POCUS)")


def video_info(path: Path) -> tuple[int, float]:
    """(frame count, frames per second) of the first video stream, from metadata.

    Raises CorruptFrameError naming ``path`` when the container cannot be opened.
    """
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CorruptFrameError(str(path), "no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            count = int(stream.frames or 0)
            if count <= 0 and stream.duration and stream.time_base and fps:
                count = int(round(float(stream.duration * stream.time_base) * fps))
            if count <= 0:  # no usable metadata: count packets (demux only, no decoding)
                count = sum(1 for p in container.demux(stream) if p.size)
    except av.FFmpegError as err:
        raise CorruptFrameError(str(path), f"cannot open video: {err}") from err
    if count <= 0:
        raise CorruptFrameError(str(path), "video holds no frames")
    return count, fps


def decode_gray(path: Path, indices: set[int] | None = None) -> dict[int, np.ndarray]:
    """Decode frames ``indices`` (all when None) of ``path`` to (H, W) uint8 luminance."""
    av = _av()
    wanted = None if indices is None else set(indices)
    last = max(wanted) if wanted else None
    frames: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if wanted is None or i in wanted:
                    frames[i] = frame.to_ndarray(format="gray").astype(np.uint8, copy=False)
                if last is not None and i >= last:
                    break
    except (av.FFmpegError, IndexError) as err:
        raise CorruptFrameError(str(path), f"cannot decode video: {err}") from err
    return frames


class VideoFrames:
    """Decoded frames of the most recently used video (one video kept in memory; thread-safe)."""

    def __init__(self):
        self._path: Path | None = None
        self._frames: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, index: int, wanted: set[int] | None = None) -> np.ndarray:
        """Frame ``index`` of ``path``; on a miss decode ``wanted`` (plus ``index``) at once."""
        with self._lock:
            if self._path != path or index not in self._frames:
                need = None if wanted is None else set(wanted) | {index}
                self._frames = decode_gray(path, need)
                self._path = path
            frames = self._frames
        if index not in frames:
            raise CorruptFrameError(str(path), f"frame {index} is beyond the decodable end "
                                               f"({len(frames)} frames decoded)")
        return frames[index]
