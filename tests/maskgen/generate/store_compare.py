"""Equality of two stores: arrays bitwise (NaN == NaN), attributes, manifest rows."""

import math

import numpy as np

from maskgen.store import open_store


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_stores_equal(path_a, path_b):
    a, b = open_store(path_a), open_store(path_b)
    assert a.attrs == b.attrs
    assert len(a) == len(b)
    for name in ("images", "masks", "scores", "counts"):
        x, y = a.group[name][:], b.group[name][:]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f"array {name} differs"
    rows_a, rows_b = a.manifest.to_pylist(), b.manifest.to_pylist()
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert all(_same(ra[k], rb[k]) for k in ra), (ra, rb)
