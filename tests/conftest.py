"""Shared test set-up: markers, determinism, and small CPU budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DDTI_SAMPLE = SHARED / "data" / "ddti-sample"


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _small_cpu_budget():
    """Two cores here: keep torch from oversubscribing them when tests run in one process."""
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    yield


@pytest.fixture
def one_thread():
    """Tiny tensors on a shared machine: one torch thread is faster than two fighting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ddti_sample() -> Path:
    """The genuine DDTI frame in the SAMUS-style layout (img/ and label/)."""
    if not (DDTI_SAMPLE / "img").exists():
        pytest.skip(f"genuine sample not found at {DDTI_SAMPLE}")
    return DDTI_SAMPLE
