"""LP-SAM tests run single-threaded: the tiny models gain nothing from a second (shared) core."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
