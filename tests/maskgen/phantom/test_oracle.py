"""The oracle store: a phantom butus store with the phantom's own anatomy as its masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from maskgen.cli.main import main
from maskgen.datasets.letterbox import letterbox
from maskgen.generate.job import MaskJob, ReaderSpec, run_mask_job
from maskgen.generate.oracle import OracleError, anatomy_masks, write_oracle_store
from maskgen.generate.postprocess import PostprocessConfig
from maskgen.phantom.generate import dataset_rng
from maskgen.phantom.write_videos import butus_frames
from maskgen.store import open_store, unpack_masks


def test_anatomy_masks_are_regions_of_each_role_largest_first():
    anatomy = np.zeros((12, 12), np.uint8)
    anatomy[0:6, 0:6] = 3            # 36 px
    anatomy[8:10, 0:2] = 3           # 4 px, the same role, another region
    anatomy[7:12, 6:12] = 5          # 30 px
    anatomy[0, 11] = 5               # 1 px: below min_area
    masks = anatomy_masks(anatomy, k=16, min_area=2)
    assert [int(m.sum()) for m in masks] == [36, 30, 4]
    assert masks[0][0, 0] and masks[1][11, 11] and masks[2][9, 1] and not masks.any(0)[0, 11]
    assert len(anatomy_masks(anatomy, k=2, min_area=2)) == 2
    assert anatomy_masks(np.zeros((4, 4), np.uint8), k=3, min_area=1).shape == (0, 4, 4)


@pytest.fixture(scope="module")
def butus_store(tiny_phantom, tmp_path_factory, standins):
    """A store of the tiny phantom's butus frames made the way `maskgen run` makes one."""
    root, _ = tiny_phantom
    out = tmp_path_factory.mktemp("butus") / "store"
    run_mask_job(MaskJob(out=str(out), reader=ReaderSpec("butus", str(root / "butus")),
                         predictor=standins.ToyPredictorSpec(64), post=PostprocessConfig(k=4, min_area=4),
                         size=64, chunk=8, batch_size=4, device="cpu"), progress=False)
    return out


def test_oracle_store_keeps_the_frames_and_holds_the_phantoms_anatomy(tiny_phantom, butus_store, tmp_path):
    root, _ = tiny_phantom
    out = tmp_path / "oracle"
    summary = write_oracle_store(butus_store, root, out, progress=False)
    template, oracle = open_store(butus_store), open_store(out)
    assert summary["frames"] == len(oracle) == len(template) and oracle.k == template.k == 4
    assert oracle.manifest.column("frame_id").to_pylist() == template.manifest.column("frame_id").to_pylist()
    a, b = template.read(0, len(template)), oracle.read(0, len(oracle))
    assert np.array_equal(a["images"], b["images"])
    seed = json.loads((root / "phantom.json").read_text())["seed"]
    frames = {str(p): (s, t) for p, s, t in butus_frames(
        json.loads((root / "phantom.json").read_text())["config"]["sizes"]["butus"], dataset_rng(seed, "butus"))}
    masks = unpack_masks(b["masks"])
    for i, row in enumerate(oracle.manifest.to_pylist()):
        scene, t = frames[row["source"]]
        anatomy = letterbox(scene.anatomy(scene.frame(t)[1]), 64, nearest=True)[0]
        n = int(b["counts"][i])
        assert n == row["mask_count"] and 1 <= n <= 4
        areas = masks[i, :n].sum((1, 2))
        assert list(areas) == sorted(areas, reverse=True) and not masks[i, n:].any()
        for m in masks[i, :n]:  # each mask is one role's region of the phantom's anatomy
            assert len(np.unique(anatomy[m])) == 1 and anatomy[m][0] > 0
        assert np.all(b["scores"][i, :n] == 1.0) and np.isnan(b["scores"][i, n:]).all()
    assert oracle.attrs["generation"]["mask_source"].startswith("phantom ground-truth anatomy")


def test_oracle_refuses_a_store_of_another_phantom(tiny_phantom, butus_store, tmp_path):
    root, _ = tiny_phantom
    info = json.loads((root / "phantom.json").read_text())
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "phantom.json").write_text(json.dumps({**info, "seed": info["seed"] + 1}))
    with pytest.raises(OracleError, match="differs from the phantom"):
        write_oracle_store(butus_store, other_root, tmp_path / "o1", progress=False)
    result = CliRunner().invoke(main, ["oracle", str(butus_store), "--phantom", str(tmp_path), "--out",
                                       str(tmp_path / "o2")])  # a folder without phantom.json
    assert result.exit_code != 0 and "phantom.json" in result.output and not (tmp_path / "o2").exists()
    ok = CliRunner().invoke(main, ["oracle", str(butus_store), "--phantom", str(root), "--out", str(tmp_path / "o3"),
                                   "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert "oracle store:" in ok.output and open_store(tmp_path / "o3").usable_rows().size > 0
