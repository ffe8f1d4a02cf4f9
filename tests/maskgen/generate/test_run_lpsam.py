"""End to end: `maskgen run` with the real registry reader and the real tiny LP-SAM."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskgen.cli.main import main
from maskgen.lpsam import testing as lpsam_testing
from maskgen.store import open_store
from maskgen.store.verify import verify_store


@pytest.fixture(scope="module")
def butterfly_root(tmp_path_factory):
    """USCL's Butterfly layout: Butte/<Video>_mp4/<Video>_mp4_frame<N>.jpg, one file corrupt."""
    root = tmp_path_factory.mktemp("butus")
    video = root / "Butte" / "Reg-Demo_mp4"
    video.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :150]
    for i in range(5):
        img = rng.gamma(2.0, 20.0, (120, 150))
        img[(yy - 60) ** 2 / 30**2 + (xx - 40 - 10 * i) ** 2 / 25**2 < 1] += 120
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(video / f"Reg-Demo_mp4_frame{i}.jpg")
    (video / "Reg-Demo_mp4_frame5.jpg").write_bytes(b"\xff\xd8 truncated")
    return root


def test_maskgen_run_on_butterfly_with_tiny_lpsam(butterfly_root, tmp_path):
    adapt = lpsam_testing.make_random_adapt_dir(tmp_path / "lpsam")
    out = tmp_path / "store"
    args = ["run", "--dataset", "butus", "--root", str(butterfly_root), "--checkpoint", str(adapt),
            "--out", str(out), "--k", "8", "--chunk", "4", "--batch-size", "3", "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "frames: 6 (5 ok, 1 failed)" in result.output
    store = open_store(out)
    assert verify_store(out) == []
    assert (len(store), store.k, store.size) == (6, 8, 256)
    from maskgen.common.files import sha256_file

    assert store.attrs["lpsam_checkpoint_sha256"] == sha256_file(adapt / "lpsam.safetensors")
    assert store.attrs["generation"]["dataset"] == "butus"
    rows = store.manifest.to_pylist()
    assert rows[5]["status"] == "failed" and "frame5" in rows[5]["source"]
    assert rows[0]["group"] == "Reg-Demo_mp4" and (rows[0]["orig_height"], rows[0]["orig_width"]) == (120, 150)
    assert json.loads((out / "run.json").read_text())["config"]["post"]["k"] == 8

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 run, 2 already done" in again.output
    # STORE/config.toml replays the run: the same store settings, so nothing is recomputed
    replay = CliRunner().invoke(main, ["run", "--config", str(out / "config.toml")])
    assert replay.exit_code == 0 and "0 run, 2 already done" in replay.output, replay.output
    other = CliRunner().invoke(main, [a if a != "8" else "4" for a in args])
    assert other.exit_code != 0 and "post_k: store has 8, this run asks for 4" in other.output


def test_two_workers_equal_one_with_tiny_lpsam(butterfly_root, tmp_path):
    """With equal torch threads per worker, real LP-SAM on CPU gives bitwise equal stores."""
    import importlib

    adapt = lpsam_testing.make_random_adapt_dir(tmp_path / "lpsam")
    for workers in (1, 2):
        args = ["run", "--dataset", "butus", "--root", str(butterfly_root), "--checkpoint", str(adapt),
                "--out", str(tmp_path / f"w{workers}"), "--chunk", "2", "--device", "cpu", "--no-progress",
                "--workers", str(workers), "--threads", "1"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    importlib.import_module("store_compare").assert_stores_equal(tmp_path / "w1", tmp_path / "w2")


def test_maskgen_run_with_box_proposals(butterfly_root, tmp_path):
    """--proposals latent+boxes: the box candidates reach the store's slots, and are recorded.

    A random-weight LP-SAM says ~0.5 everywhere, so with a threshold below that and nothing
    merged or dropped every candidate becomes one mask: 5 latent ones, then 9 + 4 boxes."""
    adapt = lpsam_testing.make_random_adapt_dir(tmp_path / "lpsam")
    counts = {}
    for mode in ("latent", "latent+boxes"):
        out = tmp_path / mode
        result = CliRunner().invoke(main, [
            "run", "--dataset", "butus", "--root", str(butterfly_root), "--checkpoint", str(adapt), "--out", str(out),
            "--k", "16", "--device", "cpu", "--no-progress", "--proposals", mode, "--box-sides", "0.5,0.75",
            "--proposal-min-iou", "0", "--proposal-min-stability", "0", "--mask-threshold", "0.45",
            "--no-coherent", "--min-area", "1", "--dedup-iou", "1.0"])
        assert result.exit_code == 0, result.output
        store = open_store(out)
        counts[mode] = store.read(0, len(store))["counts"]
        generation = store.attrs["generation"]
        assert generation["proposals_mode"] == mode
        assert ("proposals_box_sides" in generation) == (mode != "latent")
    assert generation["proposals_box_sides"] == [0.5, 0.75]
    ok = slice(0, 5)  # frame 5 is corrupt
    assert counts["latent"][ok].tolist() == [5] * 5 and counts["latent+boxes"][ok].tolist() == [16] * 5
    bad = CliRunner().invoke(main, ["run", "--dataset", "butus", "--root", str(butterfly_root), "--checkpoint",
                                    str(adapt), "--out", str(tmp_path / "bad"), "--proposals", "boxes",
                                    "--box-sides", "0.5,big"])
    assert bad.exit_code == 2 and "--box-sides" in bad.output and not (tmp_path / "bad").exists()
