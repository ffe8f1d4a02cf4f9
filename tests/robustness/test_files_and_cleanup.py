"""Every file accounted for, kill leftovers cleaned, one line instead of a traceback."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from faults import TINY_RUN, huge_png
from PIL import Image

from maskgen.cli.main import main as maskgen_main
from maskgen.datasets.readers.audit import odd_entries
from maskgen.lpsam import testing as lpsam_testing
from pretrain.cli import main as pretrain_main

pytestmark = pytest.mark.usefixtures("one_thread")


class Evil:
    """Unpickling this would run code (create the marker file); weights_only=True must refuse."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(path, marker):
    path.write_bytes(pickle.dumps({"model": Evil(marker)}, protocol=2))
    return path


def odd_root(tmp_path):
    """USCL's Butterfly layout, 4 good frames, one oversized PNG, and every odd kind of entry."""
    root = tmp_path / "butus"
    video = root / "Butte" / "Reg-Demo_mp4"
    video.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        img = rng.gamma(2.0, 20.0, (120, 150))
        img[40:80, 30 + 10 * i:90 + 10 * i] += 120
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(video / f"Reg-Demo_mp4_frame{i}.jpg")
    huge_png(video / "Reg-Demo_mp4_frame4.jpg")
    (video / "Reg-Demo_mp4_frame5.jpg").symlink_to("Reg-Demo_mp4_frame5.jpg")   # a loop
    (video / "Reg-Demo_mp4_frame6.jpg").symlink_to("gone.jpg")                  # dangling
    os.mkfifo(video / "Reg-Demo_mp4_frame7.jpg")                                # a FIFO
    (video / "Reg-Demo_mp4_frame8.jpg").mkdir()                                 # a folder
    return root


ODD = {"Butte/Reg-Demo_mp4/Reg-Demo_mp4_frame5.jpg": "symlink loop",
       "Butte/Reg-Demo_mp4/Reg-Demo_mp4_frame6.jpg": "dangling symlink",
       "Butte/Reg-Demo_mp4/Reg-Demo_mp4_frame7.jpg": "a FIFO",
       "Butte/Reg-Demo_mp4/Reg-Demo_mp4_frame8.jpg": "a folder named like a .jpg file"}


def test_odd_entries_are_found_without_following_links(tmp_path):
    root = odd_root(tmp_path)
    (root / "up").symlink_to(root)  # a link back up the tree is neither followed nor a problem
    found = {p.relative_to(root).as_posix(): r for p, r in odd_entries(root)}
    assert set(found) == set(ODD) and all(ODD[k] in found[k] for k in ODD)


def test_maskgen_run_records_every_file_and_cleans_up(tmp_path):
    """Odd entries are problems in `datasets show`, the run's output and run.json; the oversized
    PNG is one failed row; a stale temp file goes; a lost run.json is written by the rerun."""
    root = odd_root(tmp_path)
    shown = CliRunner().invoke(maskgen_main, ["datasets", "show", "butus", "--root", str(root)])
    assert shown.exit_code == 0 and all(k in shown.output for k in ODD), shown.output
    adapt = lpsam_testing.make_random_adapt_dir(tmp_path / "lpsam")
    out = tmp_path / "store"
    args = ["run", "--dataset", "butus", "--root", str(root), "--checkpoint", str(adapt), "--out", str(out),
            "--k", "4", "--chunk", "4", "--device", "cpu", "--threads", "1", "--no-progress"]
    result = CliRunner().invoke(maskgen_main, args)
    assert result.exit_code == 0, result.output
    assert "frames: 5 (4 ok, 1 failed)" in result.output and "4 file(s) under --root are not frames" in result.output
    info = json.loads((out / "run.json").read_text())
    assert {p for p, _ in info["inputs"]["reader_problems"]} == set(ODD)
    from maskgen.store import open_store

    failed = [r for r in open_store(out).manifest.to_pylist() if r["status"] == "failed"]
    assert len(failed) == 1 and "frame4" in failed[0]["source"] and "oversized" in failed[0]["reason"]

    (out / "run.json").unlink()  # as if killed between the manifest and run.json
    stale = out / ".manifest.parquet.ab12cd34.tmp"
    stale.write_bytes(b"\0" * 1000)  # as if killed in the middle of an atomic write
    again = CliRunner().invoke(maskgen_main, args)
    assert again.exit_code == 0 and "0 run, 2 already done" in again.output
    assert (out / "run.json").exists() and not stale.exists()


@pytest.mark.parametrize("fault", ["corrupt", "pickle"])
def test_bad_lpsam_weights_one_line_and_no_store_left(tmp_path, fault):
    """Issue: unloadable weights left an empty store that refused the corrected rerun."""
    root = odd_root(tmp_path)
    adapt = lpsam_testing.make_random_adapt_dir(tmp_path / "lpsam")
    weights = adapt / "lpsam.safetensors"
    good = weights.read_bytes()
    marker = tmp_path / "pwned"
    if fault == "corrupt":
        weights.write_bytes(good[: len(good) // 2])  # a truncated download
    else:
        evil_pickle(weights, marker)
    out = tmp_path / "store"
    args = ["run", "--dataset", "butus", "--root", str(root), "--checkpoint", str(adapt), "--out", str(out),
            "--k", "4", "--chunk", "4", "--device", "cpu", "--threads", "1", "--no-progress"]
    result = CliRunner().invoke(maskgen_main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "LP-SAM weights" in result.output, result.output
    assert ("pickle" if fault == "pickle" else "corrupt or truncated") in result.output
    assert not out.exists() and not marker.exists()
    weights.write_bytes(good)
    fixed = CliRunner().invoke(maskgen_main, args)  # the corrected rerun needs no --overwrite
    assert fixed.exit_code == 0, fixed.output


def test_unpicklable_sam_checkpoint_one_line_and_no_out_left(tmp_path, monkeypatch):
    from maskgen.lpsam import data as lpsam_data

    monkeypatch.setattr(lpsam_data, "load_pairs", lambda *a, **k: lpsam_testing.synthetic_pairs(2, 64))
    marker = tmp_path / "pwned"
    sam = evil_pickle(tmp_path / "sam_vit_b.pth", marker)
    out = tmp_path / "adapt"
    result = CliRunner().invoke(maskgen_main, ["adapt", "--out", str(out), "--dataset", "camus", "--root",
                                               str(tmp_path), "--sam-checkpoint", str(sam), "--model", "vit_b",
                                               "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "SAM checkpoint" in result.output and "refused by weights_only=True" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:") and not out.exists()
    assert not marker.exists()


def test_evaluate_one_line_for_corrupt_or_pickled_weights(tmp_path):
    from evaluate.cli import main as evaluate_main

    marker = tmp_path / "pwned"
    files = {"pickled.safetensors": evil_pickle(tmp_path / "pickled.safetensors", marker),
             "evil.pth": evil_pickle(tmp_path / "evil.pth", marker),
             "torn.safetensors": tmp_path / "torn.safetensors"}
    files["torn.safetensors"].write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    want = {"pickled.safetensors": "is a pickle", "evil.pth": "refused by weights_only=True",
            "torn.safetensors": "not a readable safetensors file"}
    for name, path in files.items():
        result = CliRunner().invoke(evaluate_main, ["sweep", "--root", str(tmp_path), "--out",
                                                    str(tmp_path / "e"), "--tasks", "busi-seg",
                                                    "--checkpoint", f"x={path}"])
        assert result.exit_code == 2 and want[name] in result.output and "Traceback" not in result.output, name
    assert not marker.exists() and not (tmp_path / "e").exists()



def test_torn_metrics_line_does_not_block_resume(tiny_store, tmp_path):
    """Issue: a partial last line (a real disk-full) blocked --resume naming no file."""
    out = tmp_path / "run"
    first = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out), *TINY_RUN,
                                               "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    metrics = out / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "epoch": 1, "loss": 4.1, "lr": 0.0')  # torn
    resumed = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out), *TINY_RUN,
                                                 "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(ln)["step"] for ln in metrics.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_damaged_metrics_line_is_named(tmp_path):
    from pretrain.jsonl import read_records

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not a JSON record"):
        read_records(path)


def test_full_disk_and_unwritable_out_are_one_line(tiny_store, tmp_path, monkeypatch):
    """Issue: a full disk read as "inline_container.cc:672 unexpected pos"."""
    import pretrain.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4160 vs 4054")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    out = tmp_path / "run"
    result = CliRunner().invoke(pretrain_main, ["run", "--store", str(tiny_store), "--out", str(out), *TINY_RUN])
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1].split("]")[-1]  # after the progress bar's last frame
    assert last == f"Error: cannot write {out / 'checkpoint.pt'}: no space left on device (free some space or " \
                   "choose another output folder)"
    assert not list(out.glob(".*.tmp"))  # the half-written temp file is gone
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    for main, args in ((pretrain_main, ["run", "--store", str(tiny_store), "--out", str(blocker / "run"), *TINY_RUN]),):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.output.strip() == f"Error: cannot write {blocker / 'run'}: Not a directory"


def test_read_safetensors_never_loads_pickles(tmp_path):
    from maskgen.common.weightfiles import WeightsFileError, read_safetensors, read_torch_weights

    marker = tmp_path / "pwned"
    path = evil_pickle(tmp_path / "w.safetensors", marker)
    with pytest.raises(WeightsFileError, match="pickle"):
        read_safetensors(path)
    torch.save({"a": torch.zeros(2)}, tmp_path / "ok.pt")
    assert read_torch_weights(tmp_path / "ok.pt")["a"].shape == (2,)
    with pytest.raises(WeightsFileError, match="refused by weights_only=True"):
        read_torch_weights(evil_pickle(tmp_path / "evil.pt", marker))
    assert not marker.exists()
