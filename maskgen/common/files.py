"""Files written whole or not at all, their hashes, and byte-stable safetensors.

``atomic_write_*`` write a temporary file beside the target and rename it, so a reader never
sees half a file and a killed job never leaves one. What made an artefact (``run.json``) is
``maskgen.common.provenance``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_NAME_CHARS = string.ascii_letters + string.digits + "_"


def _temp_beside(path: Path) -> Path:
    """Create an empty, new ``.NAME.XXXXXXXX.tmp`` beside ``path`` and return its path.

    Opened with mode 0666 so the process umask applies, as for any plain ``open(path, "w")``
    (``tempfile.mkstemp`` would make it 0600, and reading the umask means setting it,
    process-wide, which races with other threads).
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{''.join(secrets.choice(_NAME_CHARS) for _ in range(8))}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# the names ``atomic_path`` gives its temporary files (``_temp_beside``: 8 random characters)
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temps(folder: str | os.PathLike, lock_name: str = ".anaus.lock") -> list[Path]:
    """Delete the temporary files that interrupted ``atomic_path`` writes left under ``folder``.

    Call it only while holding ``folder``'s lock (``maskgen.common.locks``), when no write can be in
    flight. Subfolders holding their own lock (``lock_name``) belong to another writer and are
    not entered. Returns the removed paths.
    """
    removed = []
    for parent, dirs, files in os.walk(folder):
        if parent != str(folder) and lock_name in files:
            dirs[:] = []
            continue
        for name in files:
            if _TEMP_NAME.match(name):
                path = Path(parent) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def safetensors_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """safetensors serialisation whose bytes (and sha256) depend only on the tensors and metadata.

    The safetensors writer orders the metadata keys at random (a hash map), so the same weights
    written twice would get two hashes; here the header's metadata is re-written sorted, at the
    same length, so the tensor data and offsets are untouched.
    """
    from safetensors.torch import save

    data = save(dict(tensors), metadata=dict(metadata) if metadata else None)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > size:  # cannot happen for the same keys and values; never write a broken file
        raise ValueError("safetensors header grew when its metadata was sorted")
    return data[:8] + text.ljust(size) + data[8 + size:]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
