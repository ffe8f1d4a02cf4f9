"""A real kill (SIGKILL mid-run) then a rerun equals a clean run; 2 dask workers equal 1."""

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from maskgen.generate.job import run_mask_job
from maskgen.store import open_store

HERE = Path(__file__).parent
storecompare = importlib.import_module("store_compare")

SCRIPT = """
import sys
sys.path.insert(0, sys.argv[2])
import store_standins as standins
from maskgen.generate.job import MaskJob, run_mask_job
from maskgen.generate.postprocess import PostprocessConfig
job = MaskJob(out=sys.argv[1], reader=standins.ToyReaderSpec(22), post=PostprocessConfig(k=4, min_area=4),
              predictor=standins.ToyPredictorSpec(64, delay=0.4), size=64, chunk=4, batch_size=3, device="cpu")
run_mask_job(job, progress=False)
"""


def test_sigkill_mid_run_then_rerun_equals_clean_run(toy_store, toy_job_factory, tmp_path):
    out = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(HERE)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    try:
        while len(list((out / ".parts").glob("unit-*.parquet"))) < 2:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the job never finished two units"
            time.sleep(0.05)
        time.sleep(0.2)  # land inside the next unit
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = len(list((out / ".parts").glob("unit-*.parquet")))
    assert 2 <= done < 6 and not (out / "manifest.parquet").exists()
    summary = run_mask_job(toy_job_factory(out), progress=False)
    assert summary.units_skipped == done and summary.units_run == 6 - done
    storecompare.assert_stores_equal(out, toy_store)


def test_two_dask_workers_of_an_existing_cluster_equal_one(toy_store, toy_job_factory, tmp_path):
    """--scheduler ADDRESS with 2 workers; the --workers N local cluster is exercised by
    test_run_lpsam.py::test_two_workers_equal_one_with_tiny_lpsam."""
    from distributed import LocalCluster

    out = tmp_path / "store"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        summary = run_mask_job(toy_job_factory(out), scheduler=cluster.scheduler_address, progress=False)
    assert summary.units_run == 6
    storecompare.assert_stores_equal(out, toy_store)
    assert open_store(out).manifest.num_rows == 22


def test_store_readers_do_not_import_torch_or_sam():
    code = ("import sys, maskgen.store, maskgen.store.verify, maskgen.store.inspection; "
            "print(sorted(m for m in ('torch', 'segment_anything') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
