"""A deleted or corrupted chunk of each array: verify names it, pretrain refuses the store."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from maskgen.cli.main import main as maskgen_main
from maskgen.store import ARRAY_NAMES, ZARR_NAME, StoreChunkError, chunk_files, open_store
from maskgen.store.verify import verify_store


@pytest.fixture
def good_store(tiny_store):
    """The tiny store (5 chunk files per array), consistent before any damage."""
    assert verify_store(tiny_store) == []
    return tiny_store


def damaged_copy(good_store, tmp_path, array, how, index=1):
    """A copy of the store with chunk ``index`` of ``array`` deleted or overwritten with noise."""
    store = tmp_path / "store"
    shutil.copytree(good_store, store)
    group = zarr.open_group(store / ZARR_NAME, mode="r")
    start, stop, key = chunk_files(group[array])[index]
    target = store / ZARR_NAME / array / key
    assert target.is_file()
    if how == "delete":
        target.unlink()
    else:
        target.write_bytes(np.random.default_rng(0).bytes(target.stat().st_size or 64))
    return store, f"{array}/{key}"


@pytest.mark.parametrize("array", ARRAY_NAMES)
@pytest.mark.parametrize("how", ["delete", "corrupt"])
def test_verify_names_a_deleted_or_corrupted_chunk_of_each_array(good_store, tmp_path, array, how):
    """Must show: every array, both faults, caught and named (CLI: exit 1, no traceback)."""
    store, key = damaged_copy(good_store, tmp_path, array, how)
    problems = verify_store(store)
    assert problems and any(key in p for p in problems), problems
    word = "missing" if how == "delete" else "cannot be decoded"
    assert any(word in p and key in p for p in problems), problems
    result = CliRunner().invoke(maskgen_main, ["verify", str(store)])
    assert result.exit_code == 1 and key in result.output and "Traceback" not in result.output
    assert len(result.output.splitlines()) < 12  # a few precise lines, not a codec traceback


@pytest.mark.parametrize("array", ARRAY_NAMES)
def test_pretrain_refuses_a_store_with_a_missing_chunk(good_store, tmp_path, array):
    store, key = damaged_copy(good_store, tmp_path, array, "delete")
    with pytest.raises(StoreChunkError, match=key.replace("/", "/")):
        open_store(store)
    from pretrain.cli import main as pretrain_main

    result = CliRunner().invoke(pretrain_main, ["run", "--store", str(store), "--out", str(tmp_path / "run"),
                                                "--epochs", "1", "--batch-size", "8", "--resolution", "32",
                                                "--scales", "2", "--device", "cpu"])
    assert result.exit_code == 1 and key in result.output and "missing" in result.output, result.output
    assert not (tmp_path / "run").exists()  # nothing left behind


@pytest.mark.parametrize("array", ARRAY_NAMES)
def test_reading_a_corrupted_chunk_names_it(good_store, tmp_path, array):
    store, key = damaged_copy(good_store, tmp_path, array, "corrupt", index=2)
    opened = open_store(store)  # every file is there: the cheap check passes
    opened.read(0, 5)
    with pytest.raises(StoreChunkError, match=f"{array}/{key.split('/', 1)[1]}.*cannot be decoded"):
        opened.read(10, 15)


def test_pretrain_run_fails_naming_a_corrupted_chunk(good_store, tmp_path):
    from pretrain.cli import main as pretrain_main

    store, key = damaged_copy(good_store, tmp_path, "masks", "corrupt", index=3)
    result = CliRunner().invoke(pretrain_main, ["run", "--store", str(store), "--out", str(tmp_path / "run"),
                                                "--epochs", "1", "--batch-size", "8", "--resolution", "32",
                                                "--scales", "2", "--k-samples", "4", "--device", "cpu",
                                                "--cache", "none", "--threads", "1"])
    assert result.exit_code == 1, result.output
    assert key in result.output and "cannot be decoded" in result.output
    assert "Traceback" not in result.output


def test_verify_checks_counted_slots_hold_masks(good_store, tmp_path):
    """A counted mask slot that is empty (e.g. lost pixels) is named; so is a blank ok image."""
    store = tmp_path / "store"
    shutil.copytree(good_store, store)
    group = zarr.open_group(store / ZARR_NAME, mode="r+")
    with zarr.config.set({"array.write_empty_chunks": True}):
        masks = group["masks"][7:8]
        masks[0, 0] = 0
        group["masks"][7:8] = masks
        group["images"][9:10] = np.zeros((1, 32, 32), np.uint8)
    problems = verify_store(store)
    assert any("frame00007" in p and "counted mask slots [0] are empty" in p for p in problems), problems
    assert any("frame00009" in p and "blank" in p for p in problems), problems


def test_quick_verify_samples_chunks_but_checks_every_file(good_store, tmp_path):
    store, key = damaged_copy(good_store, tmp_path, "images", "delete", index=2)
    assert any(key in p for p in verify_store(store, quick=1))  # the file check covers all chunks
    store2, key2 = damaged_copy(good_store, tmp_path / "b", "images", "corrupt", index=2)
    assert verify_store(store2, quick=2) == []  # chunk 2 of 5 is not among the 2 decoded (0 and 4)
    assert any(key2 in p for p in verify_store(store2))
    result = CliRunner().invoke(maskgen_main, ["verify", "--quick", "2", str(store2)])
    assert result.exit_code == 0 and "2 chunks per array decoded" in result.output


def test_old_store_without_every_chunk_needs_only_chunks_with_data(good_store, tmp_path):
    """Stores written before every chunk was kept: a missing chunk is damage only where the
    manifest says it holds data."""
    store = tmp_path / "store"
    shutil.copytree(good_store, store)
    group = zarr.open_group(store / ZARR_NAME, mode="r+")
    del group.attrs["every_chunk_written"]
    start, stop, key = chunk_files(group["images"])[0]
    os.remove(store / ZARR_NAME / "images" / key)
    assert any(f"images/{key}" in p for p in verify_store(store))  # rows 0..4 hold ok frames
    with pytest.raises(StoreChunkError):
        open_store(store)
