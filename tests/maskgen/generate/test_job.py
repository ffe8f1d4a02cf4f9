"""The mask store job with stand-in reader and predictor: content, failures, resume, settings."""

import importlib
import shutil

import numpy as np
import pytest

from maskgen.generate.job import run_mask_job
from maskgen.generate.postprocess import PostprocessConfig, frame_regions, postprocess_frame
from maskgen.store import STATUS_FAILED, open_store, unpack_masks
from maskgen.store.verify import verify_store
from maskgen.store.writer import StoreMismatchError

storecompare = importlib.import_module("store_compare")
assert_stores_equal = storecompare.assert_stores_equal


def test_store_content_matches_direct_prediction(toy_store, standins):
    store = open_store(toy_store)
    assert verify_store(toy_store) == []
    assert len(store) == 22 and store.k == 4 and store.size == 64
    assert not (toy_store / ".parts").exists() and (toy_store / "run.json").exists()
    from maskgen.datasets.letterbox import letterbox

    predictor = standins.ToyPredictorSpec(64).load("cpu")
    row = 2
    image, box = letterbox(standins.toy_image(row), 64)
    import torch

    probs, scores = predictor(torch.from_numpy(image[None]))
    # the job clips every candidate to the frame's letter-box content box (post_clip_to_frame)
    masks, sc = postprocess_frame(probs[0].numpy(), scores[0].numpy(), PostprocessConfig(k=4, min_area=4),
                                  frame_regions([box], 64)[0])
    got = store.read(row, row + 1)
    np.testing.assert_array_equal(got["images"][0], image)
    assert got["counts"][0] == len(masks) > 1
    np.testing.assert_array_equal(unpack_masks(got["masks"][0, : len(masks)]), masks)
    np.testing.assert_array_equal(got["scores"][0, : len(masks)], sc)
    m = store.manifest.to_pylist()[row]
    assert (m["orig_height"], m["orig_width"], m["group"]) == (80, 80, "video0")
    assert m["mean_score"] == pytest.approx(float(np.mean(sc)))


def test_bad_frames_become_failed_rows_with_reasons(toy_store, standins):
    rows = {r["row"]: r for r in open_store(toy_store).manifest.to_pylist()}
    failed = {r: rows[r]["reason"] for r in rows if rows[r]["status"] == STATUS_FAILED}
    assert sorted(failed) == sorted(standins.BAD)
    assert "truncated PNG stream" in failed[3]          # CorruptFrameError
    assert "blank" in failed[7] and "too small" in failed[11]
    assert "odd shape" in failed[13] and "empty" in failed[17]
    data = open_store(toy_store).read(3, 4)
    assert data["counts"][0] == 0 and not data["images"].any() and np.isnan(data["scores"]).all()


def test_rerun_of_a_complete_store_is_a_no_op(toy_store, toy_job_factory, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(toy_store, copy)
    summary = run_mask_job(toy_job_factory(copy), progress=False)
    assert summary.units_run == 0 and summary.frames == 22 and summary.failed == 5
    assert_stores_equal(copy, toy_store)


def test_other_settings_are_refused_then_overwritten(toy_store, toy_job_factory, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(toy_store, copy)
    with pytest.raises(StoreMismatchError, match=r"post_k: store has 4, this run asks for 3"):
        run_mask_job(toy_job_factory(copy, k=3), progress=False)
    with pytest.raises(StoreMismatchError, match=r"frames: store has 22, this run asks for 10"):
        run_mask_job(toy_job_factory(copy, limit=10), progress=False)
    summary = run_mask_job(toy_job_factory(copy, k=3), overwrite=True, progress=False)
    assert summary.units_run == 6 and open_store(copy).k == 3 and verify_store(copy) == []


def test_injected_failure_then_resume_equals_clean_run(toy_store, toy_job_factory, standins, tmp_path):
    out = tmp_path / "store"
    failing = standins.ToyPredictorSpec(64, fail_on_call=3)  # one call per unit here: dies in unit 2
    with pytest.raises(RuntimeError, match="injected failure"):
        run_mask_job(toy_job_factory(out, predictor=failing), progress=False)
    parts = sorted(p.name for p in (out / ".parts").glob("unit-*.parquet"))
    assert parts == ["unit-000000.parquet", "unit-000001.parquet"]
    assert not (out / "manifest.parquet").exists()
    summary = run_mask_job(toy_job_factory(out), progress=False)
    assert (summary.units_run, summary.units_skipped) == (4, 2)
    assert_stores_equal(out, toy_store)


def test_sharded_store_equals_chunked_content(toy_store, toy_job_factory, tmp_path):
    out = tmp_path / "sharded"
    run_mask_job(toy_job_factory(out, shard=8), progress=False)
    assert verify_store(out) == []
    a, b = open_store(out), open_store(toy_store)
    for name in ("images", "masks", "counts"):
        np.testing.assert_array_equal(a.group[name][:], b.group[name][:])
    assert a.group["images"].shards[0] == 8


def test_store_killed_while_being_created_is_recreated(toy_store, toy_job_factory, tmp_path):
    from maskgen.store.writer import create_store

    out = tmp_path / "store"
    create_store(out, 3, 8, 1, {"schema": "anaus.mask_store"})  # no job marker: creation never finished
    summary = run_mask_job(toy_job_factory(out), progress=False)
    assert summary.units_run == 6
    assert_stores_equal(out, toy_store)


def test_a_foreign_zarr_group_is_not_touched(toy_job_factory, tmp_path):
    import zarr

    out = tmp_path / "store"
    zarr.open_group(out / "masks.zarr", mode="w").attrs["schema"] = "something.else"
    with pytest.raises(StoreMismatchError, match="not an ANAUS mask store"):
        run_mask_job(toy_job_factory(out), progress=False)
    assert dict(zarr.open_group(out / "masks.zarr", mode="r").attrs) == {"schema": "something.else"}
