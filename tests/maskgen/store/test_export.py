"""`maskgen export-masks`: PNG and NIfTI files that PIL and nibabel read back as the store's masks."""

import csv
import hashlib

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from maskgen.cli.export_masks import export_masks as export_cmd
from maskgen.datasets.letterbox import Letterbox, unletterbox
from maskgen.store import open_store, unpack_masks
from maskgen.store.export import (
    ExportError,
    ExportOptions,
    dominant_labels,
    export_masks,
    file_stem,
)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _store_hashes(path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def _frame(store, row):
    data = store.read(row, row + 1)
    count = int(data["counts"][0])
    return data["images"][0], unpack_masks(data["masks"][0, :count]), data["scores"][0, :count]


def test_dominant_label_is_the_first_covering_slot_pixel_by_pixel():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 6, 7)) < 0.35
    labels = dominant_labels(masks)
    for y in range(6):
        for x in range(7):
            covering = [s for s in range(4) if masks[s, y, x]]
            assert labels[y, x] == (covering[0] + 1 if covering else 0)
    assert dominant_labels(np.zeros((0, 3, 3), bool)).shape == (3, 3)


def test_png_export_reads_back_as_the_store(toy_store, tmp_path):
    before = _store_hashes(toy_store)
    out = tmp_path / "png"
    res = CliRunner().invoke(export_cmd, [str(toy_store), "--out", str(out), "--format", "png"])
    assert res.exit_code == 0, res.output
    assert _store_hashes(toy_store) == before           # the store is only read
    store = open_store(toy_store)
    index, frames = _read_csv(out / "index.csv"), _read_csv(out / "frames.csv")
    assert len(frames) == len(store) and len(index) == int(store.group["counts"][:].sum())
    assert {f["reason"] for f in frames if f["status"] == "failed"} >= {"unreadable: truncated PNG stream"}
    assert all(f["image_file"] == "" for f in frames if f["status"] == "failed")
    by_frame = {}
    for r in index:
        by_frame.setdefault(int(r["row"]), []).append(r)
    for frame in (f for f in frames if f["status"] == "ok"):
        row = int(frame["row"])
        image, masks, scores = _frame(store, row)
        np.testing.assert_array_equal(np.asarray(Image.open(out / frame["image_file"])), image)
        label_img = Image.open(out / frame["label_file"])
        assert label_img.mode == "P"                   # paletted: values are labels, shown in colour
        np.testing.assert_array_equal(np.asarray(label_img), dominant_labels(masks))
        rows = by_frame.get(row, [])
        assert [int(r["slot"]) for r in rows] == list(range(len(masks)))
        for r, mask, score in zip(rows, masks, scores, strict=True):
            np.testing.assert_array_equal(np.asarray(Image.open(out / r["file"])) > 0, mask)
            assert float(r["score"]) == pytest.approx(float(score), abs=1e-6)
            assert int(r["pixels"]) == mask.sum() >= int(r["visible_pixels"])
            assert r["dataset"] == "toy" and r["frame_id"] == frame["frame_id"]
    assert "slot00 (best score):230,25,75::" in (out / "labelmap.txt").read_text()


def test_nifti_export_reads_back_upright_with_nibabel(toy_store, tmp_path):
    store = open_store(toy_store)
    out = tmp_path / "nii"
    info = export_masks(store, out, ExportOptions(fmt="nifti"), progress=False)
    assert info["masks"] == int(store.group["counts"][:].sum())
    index = _read_csv(out / "index.csv")
    first = next(f for f in _read_csv(out / "frames.csv") if f["status"] == "ok" and int(f["mask_count"]) > 1)
    row = int(first["row"])
    image, masks, _ = _frame(store, row)
    img = nib.load(out / first["image_file"])
    assert img.shape == (store.size, store.size, 1) and nib.aff2axcodes(img.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0].T, image)
    labels = np.asarray(nib.load(out / first["label_file"]).dataobj)[:, :, 0].T
    np.testing.assert_array_equal(labels, dominant_labels(masks))
    for r in (r for r in index if int(r["row"]) == row):
        got = np.asarray(nib.load(out / r["file"]).dataobj)[:, :, 0].T
        np.testing.assert_array_equal(got.astype(bool), masks[int(r["slot"])])
    again = tmp_path / "nii2"   # same store, same bytes
    export_masks(store, again, ExportOptions(fmt="nifti", limit=3), progress=False)
    name = _read_csv(again / "frames.csv")[0]["label_file"]
    assert (again / name).read_bytes() == (out / name).read_bytes()


def test_original_geometry_and_label_images_only(toy_store, tmp_path):
    store = open_store(toy_store)
    out = tmp_path / "orig"
    export_masks(store, out, ExportOptions(geometry="original", per_mask=False, limit=6), progress=False)
    assert not (out / "masks").exists()
    manifest = {r["row"]: r for r in store.manifest.to_pylist()}
    frames = [f for f in _read_csv(out / "frames.csv") if f["status"] == "ok"]
    assert len(_read_csv(out / "frames.csv")) == 6
    for f in frames:
        m = manifest[int(f["row"])]
        labels = np.asarray(Image.open(out / f["label_file"]))
        assert labels.shape == (m["orig_height"], m["orig_width"])
        _, masks, _ = _frame(store, int(f["row"]))
        box = Letterbox.fit(m["orig_height"], m["orig_width"], store.size)
        np.testing.assert_array_equal(labels, unletterbox(dominant_labels(masks), box))
    for r in _read_csv(out / "index.csv"):
        assert r["file"] == r["label_file"]       # no per-mask files: the index points at the label image


def test_bad_output_or_options_are_one_line_and_write_nothing(toy_store, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = CliRunner().invoke(export_cmd, [str(toy_store), "--out", str(out)])
    assert res.exit_code == 1 and "is not empty" in res.output and "--overwrite" in res.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    res = CliRunner().invoke(export_cmd, [str(tmp_path), "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "no mask store" in res.output and not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match="--limit must be at least 1"):
        ExportOptions(limit=0)
    assert file_stem(7, "camus/patient0001/a b.nii.gz#3") == "000007_camus_patient0001_a_b.nii.gz_i3"


def test_a_repeated_option_is_refused(toy_store, tmp_path):
    res = CliRunner().invoke(export_cmd, [str(toy_store), "--out", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
