"""Lazy imports of the format libraries only some datasets need, with a clear error if absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from maskgen.datasets.frames import DatasetError

PIP_NAMES = {"av": "av", "nibabel": "nibabel", "openpyxl": "openpyxl", "scipy.io": "scipy"}


class MissingDependencyError(DatasetError, ImportError):
    """A reader needs a format library that is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        pip = PIP_NAMES.get(module, module.split(".")[0])
        raise MissingDependencyError(f"{purpose} needs the Python package '{pip}': "
                                     f"pip install {pip}") from err
