"""Atomic writes and provenance: every artefact carries what made it.

``atomic_write_*`` write a temporary file beside the target and rename it, so a reader never
sees half a file and a killed job never leaves one. ``run_info`` gathers the code revision,
the resolved configuration, the seed and input hashes into a JSON-able dict.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the result the usual umask mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# the names ``atomic_path`` gives its temporary files (tempfile.mkstemp: 8 random characters)
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


def code_revision() -> str:
    """The git revision of this checkout (``<sha>`` or ``<sha>-dirty``), or the package version."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        from maskgen import __version__

        return f"anaus-{__version__}"


def run_info(config: Mapping[str, Any], seed: int | None = None, **inputs: Any) -> dict[str, Any]:
    """What made an output: resolved config, seed, code revision, inputs, versions, time."""
    versions = {"python": platform.python_version()}
    for mod in ("torch", "numpy", "zarr", "timm", "segment_anything"):
        if mod in sys.modules:
            versions[mod] = getattr(sys.modules[mod], "__version__", "unknown")
    return {
        "config": dict(config),
        "seed": seed,
        "code_revision": code_revision(),
        "inputs": inputs,
        "versions": versions,
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def write_run_info(out_dir: str | os.PathLike, config: Mapping[str, Any], seed: int | None = None,
                   name: str = "run.json", **inputs: Any) -> dict[str, Any]:
    """Write ``run_info(...)`` atomically to ``out_dir/name`` and return it."""
    info = run_info(config, seed, **inputs)
    atomic_write_json(Path(out_dir) / name, info)
    return info
