"""A tiny phantom written once per test session (all nine layouts, a few items each)."""

from __future__ import annotations

import pytest

from maskgen.phantom.generate import PhantomScale, generate

TINY = PhantomScale(butus=2, camus=1, ddti=3, tg3k=3, pocus=3, busi=5, udiat=3, tn3k=4, hmcqu=1)
SEED = 5


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    summary = generate(out, TINY, seed=SEED, show_progress=False)
    return out, summary
