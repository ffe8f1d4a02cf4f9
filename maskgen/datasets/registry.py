"""The dataset registry: one TOML manifest per dataset, one reader per dataset.

``manifests/<name>.toml`` (parsed by ``maskgen.datasets.spec``) says what a dataset is, its
role, the native layouts accepted, the environment variable that may hold its root, its mask
label map, its classes, its group key, its citation and where to download it.
``open_dataset(name, root)`` picks the reader, which
detects the layout under ``root``. The manifests folder is ``<repo>/manifests``, overridable
with the environment variable ``ANAUS_MANIFESTS``.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

from maskgen.datasets.frames import DatasetError, DatasetRootError
from maskgen.datasets.readers.base import DatasetReader
from maskgen.datasets.spec import DatasetSpec, ManifestError, parse_manifest

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

class UnknownDatasetError(DatasetError, KeyError):
    """A dataset name that has no manifest."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def manifests_dir() -> Path:
    """The folder holding ``<name>.toml`` (``$ANAUS_MANIFESTS`` or ``<repo>/manifests``)."""
    override = os.environ.get(MANIFESTS_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "manifests"


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
