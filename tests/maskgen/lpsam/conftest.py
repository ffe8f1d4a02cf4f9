"""LP-SAM tests run single-threaded: the tiny models gain nothing from a second (shared) core."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def script(request):
    """The script at the test module's ``SCRIPT`` path (scripts/*.py), imported as a module."""
    path = request.module.SCRIPT
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
