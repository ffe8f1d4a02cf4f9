"""Loader: partitions disjoint and complete, usable rows only, resume position, caches agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskgen.store import open_store, unpack_masks
from maskgen.store.testing import synthetic_frames
from pretrain.loader import (
    FrameStream,
    LoaderConfig,
    buffer_shuffle,
    epoch_chunks,
    partition,
    round_robin_skip,
)


def test_partitions_disjoint_and_complete(tiny_store):
    store = open_store(tiny_store)
    usable = set(store.usable_rows().tolist())
    assert usable == set(range(24)) - {3, 11}
    for world, workers in [(1, 1), (2, 1), (2, 2), (3, 2)]:
        cfg = LoaderConfig(batch_size=1, seed=3, shuffle_buffer=4, cache="ram", workers=workers)
        streams = [FrameStream(store, cfg, r, world) for r in range(world)]
        seen = [streams[r].partition_rows(1, r, w) for r in range(world) for w in range(workers)]
        flat = np.concatenate(seen)
        assert len(flat) == len(set(flat.tolist())) and set(flat.tolist()) == usable
        for rows in seen:  # chunk-aligned: each partition owns whole chunks
            chunks = set((rows // store.chunk).tolist())
            others = set(np.concatenate([s for s in seen if s is not rows]) // store.chunk) if len(seen) > 1 else set()
            assert not chunks & others


def test_order_is_shuffled_and_reproducible():
    chunks = np.arange(10)
    assert not np.array_equal(epoch_chunks(chunks, 0, 0), epoch_chunks(chunks, 0, 1))
    assert np.array_equal(epoch_chunks(chunks, 0, 2), epoch_chunks(chunks, 0, 2))
    rows = [np.arange(c * 4, c * 4 + 4) for c in range(5)]
    order = buffer_shuffle(rows, 6, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(20)) and order.tolist() != list(range(20))
    assert partition(np.arange(12), 1, 2, 1, 3).tolist() == [4, 10]
    assert round_robin_skip([3, 1, 2], 5) == [2, 1, 2]


@pytest.mark.parametrize("cache", ["ram", "none", "device"])
def test_batches_match_store_and_resume(tiny_store, cache):
    store = open_store(tiny_store)
    images, masks, _ = synthetic_frames(24, 32, 4, seed=0)
    cfg = LoaderConfig(batch_size=4, seed=1, shuffle_buffer=8, cache=cache)
    stream = FrameStream(store, cfg, device=torch.device("cpu"))
    assert stream.batches_in_epoch(0) == 22 // 4
    stream.set_position(2, 0)
    full = list(stream)
    stream.set_position(2, 3)
    tail = list(stream)
    assert len(full) == 5 and len(tail) == 2
    for a, b in zip(full[3:], tail, strict=True):
        assert torch.equal(a["images"], b["images"])
    for batch in full:
        rows = [int(np.flatnonzero((images == im.numpy()).all((1, 2)))[0]) for im in batch["images"]]
        assert not {3, 11} & set(rows)
        assert np.array_equal(unpack_masks(batch["masks"].numpy()), masks[rows])
        assert batch["images"].dtype == torch.uint8 and batch["masks"].shape == (4, 4, 32, 4)


def test_worker_partitions_through_dataloader(tiny_store):
    from torch.utils.data import DataLoader

    store = open_store(tiny_store)
    stream = FrameStream(store, LoaderConfig(batch_size=2, seed=0, cache="none", workers=2))
    stream.set_position(0, 0)
    batches = list(DataLoader(stream, batch_size=None, num_workers=2))
    assert len(batches) == stream.batches_in_epoch(0)
    imgs = torch.cat([b["images"] for b in batches]).flatten(1)
    assert len({tuple(r.tolist()) for r in imgs}) == imgs.shape[0]  # no frame twice


def test_bad_options():
    with pytest.raises(ValueError, match="--cache 'gpu'"):
        LoaderConfig(cache="gpu")
    with pytest.raises(ValueError, match="--batch-size"):
        LoaderConfig(batch_size=0)
