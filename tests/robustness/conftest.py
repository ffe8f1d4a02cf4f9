"""Fault-injection tests of issue 15: what is promised in docs/robustness.md, broken on purpose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "maskgen" / "generate"):  # faults.py; the store tests' toy reader / predictor
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def live_process():
    """A live process on this host (sleeping), whose pid a lock can name; killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """24 frames of 32 x 32, K = 4, chunks of 5 frames, rows 3 and 11 failed (unusable)."""
    from maskgen.store.testing import make_synthetic_store

    path = tmp_path_factory.mktemp("store")
    make_synthetic_store(path, n=24, size=32, k=4, chunk=5, failed=(3, 11))
    return path
