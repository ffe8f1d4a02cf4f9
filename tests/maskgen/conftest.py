"""Fixtures of the stage-one tests (store, generate, CLI): stand-ins, a finished toy store."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).parent / "generate"  # store_standins.py, store_compare.py
# dask pickles the stand-ins by reference: the folder goes on sys.path, which spawned
# worker processes inherit, so they import store_standins like the tests do
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))


@pytest.fixture(scope="session")
def standins():
    return importlib.import_module("store_standins")


@pytest.fixture(scope="session")
def toy_job_factory(standins):
    from maskgen.generate.job import MaskJob
    from maskgen.generate.postprocess import PostprocessConfig

    def make(out, n=22, k=4, size=64, chunk=4, predictor=None, **kw):
        return MaskJob(out=str(out), reader=standins.ToyReaderSpec(n), post=PostprocessConfig(k=k, min_area=4),
                       predictor=predictor or standins.ToyPredictorSpec(size), size=size, chunk=chunk,
                       batch_size=3, device="cpu", **kw)

    return make


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory, toy_job_factory):
    """A finished store of 22 toy frames (5 of them bad), K=4, S=64, chunks of 4."""
    from maskgen.generate.job import run_mask_job

    out = tmp_path_factory.mktemp("toy") / "store"
    run_mask_job(toy_job_factory(out), progress=False)
    return out
