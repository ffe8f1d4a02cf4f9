"""Several datasets in one store (``maskgen run --dataset A --root X --dataset B --root Y``): the
paper's Butterfly + CAMUS corpus, on the phantom's butus + camus."""

from __future__ import annotations

import pytest
from store_compare import assert_stores_equal

from maskgen.datasets.folds import check_no_leak, grouped_kfold
from maskgen.generate.job import CorpusSpec, MaskJob, ReaderSpec, reader_spec, run_mask_job
from maskgen.generate.postprocess import PostprocessConfig
from maskgen.phantom.generate import PhantomScale, generate
from maskgen.store import open_store
from maskgen.store.verify import verify_store

SCALE = PhantomScale(butus=2, camus=1, ddti=0, tg3k=0, pocus=0, busi=0, udiat=0, tn3k=0, hmcqu=0)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    generate(out, SCALE, seed=3, datasets=("butus", "camus"), show_progress=False)
    return out


def _job(out, phantom, standins, predictor=None):
    corpus = reader_spec(["butus", "camus"], [str(phantom / "butus"), str(phantom / "camus")])
    return MaskJob(out=str(out), reader=corpus, predictor=predictor or standins.ToyPredictorSpec(64),
                   post=PostprocessConfig(k=4, min_area=4), size=64, chunk=8, batch_size=4, device="cpu")


def test_reader_spec_pairs_roots_with_datasets():
    assert reader_spec(["butus"], ["/a"]) == ReaderSpec("butus", "/a")
    assert reader_spec(["butus", "camus"], []) == CorpusSpec((ReaderSpec("butus"), ReaderSpec("camus")))
    with pytest.raises(ValueError, match="2 --dataset but 1 --root"):
        reader_spec(["butus", "camus"], ["/a"])
    with pytest.raises(ValueError, match="given twice"):
        reader_spec(["butus", "butus"], ["/a", "/b"])


def test_two_datasets_one_store_resume_verify_folds(phantom, standins, tmp_path):
    clean = tmp_path / "clean"
    summary = run_mask_job(_job(clean, phantom, standins), progress=False)
    store = open_store(clean)
    assert verify_store(clean) == []
    rows = store.manifest.to_pylist()
    datasets = [r["dataset"] for r in rows]
    butus = len(_refs(phantom, "butus"))
    assert datasets == ["butus"] * butus + ["camus"] * (len(rows) - butus) and len(rows) > butus > 0
    assert len({r["frame_id"] for r in rows}) == len(rows) == summary.frames
    assert store.attrs["generation"]["dataset"] == "butus+camus"
    from maskgen.store.inspection import summarise_store

    lines = summarise_store(store).lines(store.k, store.size)
    assert f"datasets: butus {butus}, camus {len(rows) - butus}" in lines

    # killed mid-run (the predictor dies in unit 3), then resumed: equal to the clean store
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="injected failure"):
        run_mask_job(_job(out, phantom, standins, standins.ToyPredictorSpec(64, fail_on_call=5)), progress=False)
    again = run_mask_job(_job(out, phantom, standins), progress=False)
    assert again.units_skipped == 2 and again.units_run > 0
    assert_stores_equal(out, clean)
    assert verify_store(out) == []

    # group keys are per dataset: folds keyed by (dataset, group) never cut a clip or a patient
    keys = [f"{r['dataset']}/{r['group']}" for r in rows]
    folds = grouped_kfold(keys, k=3, seed=0)
    check_no_leak(keys, folds)
    per_dataset = {d: {r["group"] for r in rows if r["dataset"] == d} for d in ("butus", "camus")}
    assert len(set(keys)) == len(per_dataset["butus"]) + len(per_dataset["camus"])
    assert per_dataset["butus"] == {r.group for r in _refs(phantom, "butus")}  # the readers' own groups


def test_a_one_dataset_store_keeps_its_settings(phantom, standins, tmp_path):
    job = _job(tmp_path / "s", phantom, standins)
    single = MaskJob(out=job.out, reader=ReaderSpec("camus", str(phantom / "camus")), predictor=job.predictor,
                     post=job.post, size=64, chunk=8, batch_size=4, device="cpu")
    run_mask_job(single, progress=False)
    assert open_store(tmp_path / "s").attrs["generation"]["dataset"] == "camus"  # as before: old stores resume


def _refs(phantom, name):
    from maskgen.datasets.registry import open_dataset

    return open_dataset(name, phantom / name).refs()
