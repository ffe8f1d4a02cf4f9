"""The store contract, one test class run against every way a store is made.

Stage two relies on what is checked here and nothing else: the documented attributes and axes,
the arrays' shapes, dtypes and chunking along N, the manifest's schema and row order, counts
that agree with masks and scores, and ``verify_store`` finding nothing wrong. Each subclass
makes a store a different way (``maskgen run``'s job with stand-ins, the synthetic store of
``maskgen.store.testing``); a new writer adds a subclass and passes the same tests.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from maskgen.store import (
    AXES,
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STATUS_OK,
    ZARR_NAME,
    open_store,
    unpack_masks,
)
from maskgen.store.testing import make_synthetic_store
from maskgen.store.verify import verify_store


class StoreContract:
    """Subclasses provide the ``store`` fixture: the path of a finished store."""

    def test_attributes_document_the_store(self, store):
        attrs = open_store(store).attrs
        assert attrs["schema"] == SCHEMA_NAME and attrs["schema_version"] == SCHEMA_VERSION
        assert attrs["axes"] == AXES and attrs["manifest"] == MANIFEST_NAME
        assert attrs["size"] % 8 == 0 and attrs["k"] >= 1 and len(attrs["lpsam_checkpoint_sha256"]) == 64
        assert attrs["every_chunk_written"] is True

    def test_arrays_shapes_dtypes_and_chunking(self, store):
        s = open_store(store)
        n, k, size = len(s), s.k, s.size
        expected = {"images": ((n, size, size), "uint8"), "masks": ((n, k, size, size // 8), "uint8"),
                    "scores": ((n, k), "float32"), "counts": ((n,), "uint8")}
        for name, (shape, dtype) in expected.items():
            array = s.group[name]
            assert (array.shape, str(array.dtype)) == (shape, dtype), name
            assert array.chunks[1:] == shape[1:], f"{name} is chunked along N only"
            assert array.chunks[0] == s.chunk

    def test_manifest_schema_and_rows(self, store):
        s = open_store(store)
        assert pq.read_schema(store / MANIFEST_NAME).names == MANIFEST_SCHEMA.names
        assert s.manifest.column("row").to_pylist() == list(range(len(s)))
        ids = s.manifest.column("frame_id").to_pylist()
        assert len(set(ids)) == len(ids)

    def test_counts_masks_and_scores_agree(self, store):
        s = open_store(store)
        data = s.read(0, len(s))
        rows = s.manifest.to_pylist()
        for i, row in enumerate(rows):
            count = int(data["counts"][i])
            assert row["mask_count"] == count
            assert np.isfinite(data["scores"][i, :count]).all() and np.isnan(data["scores"][i, count:]).all()
            masks = unpack_masks(data["masks"][i])
            assert all(masks[j].any() for j in range(count)) and not masks[count:].any()
            if row["status"] != STATUS_OK:
                assert count == 0 and row["reason"]
        assert s.usable_rows().tolist() == [r["row"] for r in rows if r["status"] == STATUS_OK and r["mask_count"]]

    def test_verify_finds_nothing_wrong(self, store):
        assert (store / ZARR_NAME).is_dir()
        assert verify_store(store) == []


class TestJobStore(StoreContract):
    """Made by ``maskgen run``'s job (toy reader and predictor; 5 of 22 frames fail)."""

    @pytest.fixture
    def store(self, toy_store):
        return toy_store


class TestSyntheticStore(StoreContract):
    """Made by ``maskgen.store.testing`` (what the pre-training tests and benchmarks read)."""

    @pytest.fixture(scope="class")
    @classmethod
    def store(cls, tmp_path_factory):
        path = tmp_path_factory.mktemp("synthetic")
        make_synthetic_store(path, n=12, size=32, k=4, chunk=5, failed=(2,))
        return path
