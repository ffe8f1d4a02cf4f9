"""The dataset registry: one TOML manifest per dataset, one reader per dataset.

``manifests/<name>.toml`` says what a dataset is, its role, the native layouts accepted, the
environment variable that may hold its root, its mask label map, its classes, its group key,
its citation and where to download it. ``open_dataset(name, root)`` picks the reader, which
detects the layout under ``root``. The manifests folder is ``<repo>/manifests``, overridable
with the environment variable ``ANAUS_MANIFESTS``.
"""

from __future__ import annotations

import functools
import importlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maskgen.datasets.frames import DatasetError, DatasetRootError

if TYPE_CHECKING:
    from maskgen.datasets.readers.base import DatasetReader

MANIFESTS_ENV = "ANAUS_MANIFESTS"

# dataset name -> "module:ReaderClass" (imported on first use: listing the registry stays cheap)
READERS = {
    "butus": "maskgen.datasets.readers.butus:ButusReader",
    "camus": "maskgen.datasets.readers.camus:CamusReader",
    "ddti": "maskgen.datasets.readers.ddti:DdtiReader",
    "tg3k": "maskgen.datasets.readers.tg3k:Tg3kReader",
    "tn3k": "maskgen.datasets.readers.tn3k:Tn3kReader",
    "busi": "maskgen.datasets.readers.busi:BusiReader",
    "udiat": "maskgen.datasets.readers.udiat:UdiatReader",
    "hmcqu": "maskgen.datasets.readers.hmcqu:HmcquReader",
    "pocus": "maskgen.datasets.readers.pocus:PocusReader",
}

_REQUIRED = ("name", "title", "role", "what", "root_env", "group_key", "layouts", "citation", "url")


class UnknownDatasetError(DatasetError, KeyError):
    """A dataset name that has no manifest."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


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

    @property
    def has_reader(self) -> bool:
        return self.name in READERS

    def root_hint(self) -> str:
        """Where a user gets the data and how to point the reader at it."""
        layouts = "; ".join(self.layouts)
        return (f"Pass --root DIR or set {self.root_env}. Expected layout: {layouts}. "
                f"Download: {self.url}")


def manifests_dir() -> Path:
    """The folder holding ``<name>.toml`` (``$ANAUS_MANIFESTS`` or ``<repo>/manifests``)."""
    override = os.environ.get(MANIFESTS_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "manifests"


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


@functools.cache
def _load_specs(folder: str) -> dict[str, DatasetSpec]:
    paths = sorted(Path(folder).glob("*.toml"))
    if not paths:
        raise ManifestError(f"no manifests (*.toml) in {folder}; set {MANIFESTS_ENV} to the folder")
    return {p.stem: parse_manifest(p) for p in paths}


def all_specs() -> dict[str, DatasetSpec]:
    """Every manifest, the phantom included, by name (sorted)."""
    return dict(_load_specs(str(manifests_dir())))


def dataset_names() -> list[str]:
    """Names of the datasets that have a reader (sorted); the phantom is not one of them."""
    return [name for name in all_specs() if name in READERS]


def get_spec(name: str) -> DatasetSpec:
    """The manifest of ``name`` (any manifest, the phantom included)."""
    specs = all_specs()
    if name not in specs:
        raise UnknownDatasetError(f"unknown dataset '{name}'; known: {', '.join(specs)}")
    return specs[name]


def resolve_root(spec: DatasetSpec, root: str | os.PathLike | None) -> Path:
    """``root`` or ``$<root_env>``, checked to be an existing folder (raises DatasetRootError)."""
    if root is None or str(root) == "":
        root = os.environ.get(spec.root_env) or None
        if root is None:
            raise DatasetRootError(spec.name, None, spec.root_hint())
    path = Path(root).expanduser()
    if path.is_file():
        raise DatasetRootError(spec.name, str(path), "That is a file, not a folder: give the dataset's "
                               "top folder. " + spec.root_hint())
    if not path.is_dir():
        raise DatasetRootError(spec.name, str(path), "The folder does not exist. " + spec.root_hint())
    return path


def reader_class(name: str) -> type[DatasetReader]:
    if name not in READERS:
        raise UnknownDatasetError(
            f"dataset '{name}' has no reader; readers exist for: {', '.join(sorted(READERS))}"
            + (" (the phantom root holds one folder per dataset: open_dataset(NAME, DIR/NAME))"
               if name == "phantom" else ""))
    module, attr = READERS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def open_dataset(name: str, root: str | os.PathLike | None = None) -> DatasetReader:
    """A reader of dataset ``name`` at ``root`` (or ``$<root_env>`` when None).

    Raises:
        UnknownDatasetError: no manifest/reader of that name.
        DatasetRootError: no root given and none set, the folder is missing, or no accepted
            native layout is found under it (the message says where to get the data).
    """
    spec = get_spec(name)
    cls = reader_class(name)
    return cls(resolve_root(spec, root), spec)
