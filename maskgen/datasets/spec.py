"""A dataset's manifest (``manifests/<name>.toml``) parsed into a frozen ``DatasetSpec``.

What readers are given and what the registry lists; nothing here knows the readers.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from maskgen.datasets.frames import DatasetError

_REQUIRED = ("name", "title", "role", "what", "root_env", "group_key", "layouts", "citation", "url")


class ManifestError(DatasetError, ValueError):
    """A manifest file that does not parse or misses a field."""


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed manifest.

    Attributes:
        name: registry key (file stem of the manifest).
        title: human name of the dataset.
        role: what ANAUS uses it for (pretraining, adaptation, downstream ...).
        what: one line on the content.
        root_env: environment variable that may hold the root (used when no ``--root``).
        group_key: what a frame's group is (patient, video, recording, or the image itself).
        layouts: the native layouts accepted, one line each.
        labels: mask label map {value: name}, background (0) excluded; empty if no masks.
        classes: {class id: name} for classification datasets, else None.
        citation, url: where the data comes from and where a user downloads it.
        notes: quirks worth knowing (free text).
    """

    name: str
    title: str
    role: str
    what: str
    root_env: str
    group_key: str
    layouts: tuple[str, ...]
    labels: dict[int, str]
    classes: dict[int, str] | None
    citation: str
    url: str
    notes: str = ""

    @property
    def is_downstream(self) -> bool:
        """Whether the dataset is held for downstream evaluation (LP-SAM must not adapt on it)."""
        return self.role.startswith("downstream")

    def root_hint(self) -> str:
        """Where a user gets the data and how to point the reader at it."""
        layouts = "; ".join(self.layouts)
        return (f"Pass --root DIR or set {self.root_env}. Expected layout: {layouts}. "
                f"Download: {self.url}")


def _int_keys(table: dict, field: str, path: Path) -> dict[int, str]:
    try:
        return {int(k): str(v) for k, v in sorted(table.items(), key=lambda kv: int(kv[0]))}
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{path}: [{field}] keys must be integers, got {list(table)}") from err


def parse_manifest(path: str | os.PathLike) -> DatasetSpec:
    """Parse one manifest TOML file into a ``DatasetSpec`` (raises ManifestError)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ManifestError(f"{path}: cannot parse manifest: {err}") from err
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ManifestError(f"{path}: missing field(s) {missing}")
    if data["name"] != path.stem:
        raise ManifestError(f"{path}: name '{data['name']}' differs from the file stem")
    classes = data.get("classes")
    return DatasetSpec(
        name=data["name"], title=data["title"], role=data["role"], what=data["what"],
        root_env=data["root_env"], group_key=data["group_key"],
        layouts=tuple(data["layouts"]),
        labels=_int_keys(data.get("labels", {}), "labels", path),
        classes=_int_keys(classes, "classes", path) if classes else None,
        citation=data["citation"], url=data["url"], notes=data.get("notes", ""),
    )
