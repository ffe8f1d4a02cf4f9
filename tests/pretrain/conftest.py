"""Tiny synthetic stores for the pre-training tests."""

from __future__ import annotations

import pytest

from maskgen.store.testing import make_synthetic_store


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """24 frames of 32 x 32, K = 4, chunks of 5 frames, rows 3 and 11 failed (unusable)."""
    path = tmp_path_factory.mktemp("store")
    make_synthetic_store(path, n=24, size=32, k=4, chunk=5, failed=(3, 11))
    return path
