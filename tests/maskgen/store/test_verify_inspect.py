"""`maskgen verify` catches every kind of mismatch precisely; `maskgen inspect` reports and draws."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from click.testing import CliRunner
from PIL import Image

from maskgen.cli.inspect import inspect_store, verify
from maskgen.store import open_store
from maskgen.store.inspection import overlay, summarise_store
from maskgen.store.verify import verify_store
from maskgen.store.writer import write_manifest


@pytest.fixture
def copy(toy_store, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(toy_store, out)
    return out


def _rows(path):
    return pq.read_table(path / "manifest.parquet").to_pylist()


def test_verify_cli_passes_on_a_good_store(toy_store):
    result = CliRunner().invoke(verify, [str(toy_store)])
    assert result.exit_code == 0 and "ok" in result.output


def test_verify_fails_on_a_removed_manifest_row(copy):
    rows = _rows(copy)
    write_manifest(copy, rows[:5] + rows[6:])
    result = CliRunner().invoke(verify, [str(copy)])
    assert result.exit_code == 1
    assert "manifest has 21 rows, the arrays have 22 frames" in result.output
    assert "1 array rows have no manifest row (first: [5])" in result.output


def test_verify_catches_count_score_and_slot_mismatches(copy):
    rows = _rows(copy)
    rows[0]["mask_count"] += 1
    rows[1]["frame_id"] = rows[2]["frame_id"]
    rows[3]["reason"] = ""
    write_manifest(copy, rows)
    g = zarr.open_group(copy / "masks.zarr", mode="r+")
    count4 = int(g["counts"][4])
    g["masks"][4, count4] = 1            # pixels in an empty slot
    g["scores"][5, 0] = np.nan           # NaN in a valid slot
    problems = "\n".join(verify_store(copy))
    assert f"manifest mask_count {rows[0]['mask_count']} != counts array {rows[0]['mask_count'] - 1}" in problems
    assert "frame ids listed more than once" in problems
    assert "failed with reason ''" in problems
    assert f"empty mask slots {count4}..3 hold non-zero pixels" in problems
    assert "scores of valid slots" in problems


def test_verify_catches_attribute_and_shape_mismatches(copy):
    g = zarr.open_group(copy / "masks.zarr", mode="r+")
    g.attrs["k"] = 5
    assert any("array masks has shape (22, 4, 64, 8), expected (22, 5, 64, 8)" in p for p in verify_store(copy))
    g.attrs["schema_version"] = 7
    assert any("schema_version is 7" in p for p in verify_store(copy))


def test_inspect_reports_and_draws_a_contact_sheet(toy_store, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(inspect_store, [str(toy_store), "--out", str(sheet)])
    assert result.exit_code == 0, result.output
    assert "frames: 22 (17 ok, 5 failed)" in result.output
    assert "truncated PNG stream" in result.output and "coverage: min" in result.output
    assert f"contact sheet: {sheet}" in result.output
    img = np.asarray(Image.open(sheet).convert("RGB"))
    assert img.shape[1] > img.shape[0] > 400      # 17 ok frames: 6 columns, 3 rows
    plots = toy_store / "inspect.png"
    assert f"plots: {plots}" in result.output and Image.open(plots).width > 1000


def test_summary_counts_match_the_arrays(toy_store):
    store = open_store(toy_store)
    summary = summarise_store(store)
    counts = store.group["counts"][:]
    assert sum(c * n for c, n in summary.masks_per_frame.items()) == int(counts.sum())
    assert sum(len(s) for s in summary.scores) == int(counts.sum())
    assert summary.failed == 5 and not summary.empty_masks


def test_overlay_colours_only_the_mask():
    image = np.full((8, 8), 100, np.uint8)
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 2:4, 2:4] = True
    rgb = overlay(image, mask)
    assert (rgb[0, 0] == 100).all() and not (rgb[2, 2] == 100).all()
