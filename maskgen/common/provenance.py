"""Provenance: every artefact carries what made it.

``run_info`` gathers the code revision, the resolved configuration, the seed and input hashes
into a JSON-able dict; ``write_run_info`` writes it (atomically) as ``run.json`` beside an output.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maskgen.common.files import atomic_write_json

_REPO = Path(__file__).resolve().parents[2]
RUN_INFO_NAME = "run.json"  # beside every output: what made it


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
                   name: str = RUN_INFO_NAME, **inputs: Any) -> dict[str, Any]:
    """Write ``run_info(...)`` atomically to ``out_dir/name`` and return it."""
    info = run_info(config, seed, **inputs)
    atomic_write_json(Path(out_dir) / name, info)
    return info
