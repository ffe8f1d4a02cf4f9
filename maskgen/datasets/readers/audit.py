"""Entries under a dataset root that no reader can use, found without decoding anything.

Readers list the frames they understand; what they skip on purpose (label files, masks,
sheets) is theirs to decide. What no reader can ever read is listed here, so it is recorded
as a problem instead of vanishing: symlink loops, dangling symlinks, FIFOs, sockets and
devices, and folders named like image or video files. The walk never follows symlinks and
reads only directory entries (``os.scandir``), so it costs a listing, not a decode.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from maskgen.datasets.readers.imageio import IMAGE_SUFFIXES
from maskgen.datasets.readers.video import VIDEO_SUFFIXES

MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES | {".mhd", ".raw", ".nii", ".gz", ".dcm", ".mat"}
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def _symlink_problem(path: str) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
        if err.errno == errno.ENOENT:
            return f"dangling symlink (target {os.readlink(path)!r} does not exist)"
        return f"unreadable symlink: {err.strerror}"
    kind = _KINDS.get(stat.S_IFMT(mode))
    return f"symlink to {kind}, not a regular file" if kind else None


def odd_entries(root: str | os.PathLike) -> list[tuple[Path, str]]:
    """(path, reason) of every entry under ``root`` that cannot hold a frame, sorted by path."""
    found: list[tuple[Path, str]] = []
    pending = [os.fspath(root)]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            found.append((Path(folder), f"folder cannot be listed: {err.strerror}"))
            continue
        for entry in entries:
            if entry.is_symlink():
                reason = _symlink_problem(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
                suffix = Path(entry.name).suffix.lower()
                reason = f"a folder named like a {suffix} file" if suffix in MEDIA_SUFFIXES else None
            elif entry.is_file(follow_symlinks=False):
                reason = None
            else:
                kind = _KINDS.get(stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode), "a special file")
                reason = f"{kind}, not a regular file"
            if reason:
                found.append((Path(entry.path), reason))
    return sorted(found)
