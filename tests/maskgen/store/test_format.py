"""The store schema: bit-packing round trips, create/write/open, documented attributes."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import zarr

from maskgen.store import (
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    StoreError,
    StoreNotFoundError,
    open_store,
    pack_masks,
    store_attributes,
    unpack_masks,
    unpack_masks_torch,
)
from maskgen.store.writer import create_store, write_manifest


def test_pack_unpack_round_trip_numpy_and_torch():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 4, 16, 24)) > 0.5
    packed = pack_masks(masks)
    assert packed.shape == (3, 4, 16, 3) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_masks(packed), masks)
    np.testing.assert_array_equal(unpack_masks_torch(torch.from_numpy(packed)).numpy(), masks)


def _row(i, status="ok", count=1):
    return {"frame_id": f"d/f{i}.png#0", "row": i, "dataset": "d", "source": f"f{i}.png", "group": "g",
            "frame_index": 0, "orig_height": 10, "orig_width": 12, "status": status,
            "reason": "" if status == "ok" else "bad", "mask_count": count,
            "mean_score": 0.5 if count else float("nan")}


def test_store_round_trip(tmp_path):
    n, k, s = 5, 3, 16
    create_store(tmp_path, n, s, k, store_attributes(k, s, "ab" * 32, {"dataset": "d"}), chunk=2)
    g = zarr.open_group(tmp_path / "masks.zarr", mode="r+")
    rng = np.random.default_rng(0)
    masks = rng.random((n, k, s, s)) > 0.5
    g["images"][:] = rng.integers(0, 255, (n, s, s), dtype=np.uint8)
    g["masks"][:] = pack_masks(masks)
    g["counts"][:] = [1, 0, 3, 2, 1]
    write_manifest(tmp_path, [_row(0), _row(1, "failed", 0), _row(2, count=3), _row(3, count=2), _row(4)])
    store = open_store(tmp_path, check_chunks=False)  # scores are left unwritten on purpose
    assert (len(store), store.k, store.size, store.chunk) == (n, k, s, 2)
    assert store.usable_rows().tolist() == [0, 2, 3, 4]
    got = store.read(1, 4)
    np.testing.assert_array_equal(unpack_masks(got["masks"]), masks[1:4])
    assert np.isnan(got["scores"]).all()  # fill value of untouched scores
    assert store.attrs["schema_version"] == SCHEMA_VERSION and store.attrs["axes"]["masks"][1] == "slot"
    assert pq.read_schema(tmp_path / "manifest.parquet").names == MANIFEST_SCHEMA.names


def test_open_store_errors(tmp_path):
    with pytest.raises(StoreNotFoundError, match="maskgen run"):
        open_store(tmp_path)
    create_store(tmp_path, 1, 8, 1, {"schema_version": 99})
    with pytest.raises(StoreError, match="99"):
        open_store(tmp_path)


@pytest.mark.parametrize("n", [1, 6, 8, 13])
def test_sharded_store_of_any_size(tmp_path, n):
    create_store(tmp_path, n, 8, 2, store_attributes(2, 8, "0" * 64, {}), chunk=4, shard=8)
    g = zarr.open_group(tmp_path / "masks.zarr", mode="r+")
    g["counts"][:] = np.arange(n) % 3
    assert g["counts"][:].tolist() == (np.arange(n) % 3).tolist()
    assert g["images"].shards[0] % g["images"].chunks[0] == 0
