"""DDTI: original xml+jpg (polygons, malformed marks), TN-SCUI processed, SAMUS (+ genuine frame)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskgen.datasets.frames import CorruptFrameError
from maskgen.datasets.registry import open_dataset

SQUARE = [{"x": 10, "y": 8}, {"x": 30, "y": 8}, {"x": 30, "y": 20}, {"x": 10, "y": 20}]


def _xml(marks: list[tuple[int, str]]) -> str:
    body = "".join(f"<mark><image>{k}</image><svg>{svg}</svg></mark>" for k, svg in marks)
    return f'<?xml version="1.0"?><case><number>1</number><tirads>4a</tirads>{body}</case>'


@pytest.fixture
def original(tmp_path, fx):
    good = json.dumps([{"points": SQUARE, "annotation": {}, "regionType": "freehand"}])
    (tmp_path / "1.xml").write_text(_xml([(1, good), (2, '[{"points": [{"x": 1, "y": ')]))
    (tmp_path / "10.xml").write_text(_xml([(1, good)]))
    for name in ("1_1", "1_2", "10_1"):
        fx.image(tmp_path / f"{name}.jpg", fx.noise((36, 56)))
    return tmp_path


def test_original_polygons_rasterised_and_malformed_mark_reported(original):
    reader = open_dataset("ddti", original)
    assert reader.layout == "original"
    refs = reader.refs()
    assert [r.source for r in refs] == ["1_1.jpg", "1_2.jpg", "10_1.jpg"]
    assert [r.group for r in refs] == ["1", "1", "10"]
    assert [r.has_mask for r in refs] == [True, False, True]
    (path, reason), = reader.problems
    assert path == "1.xml" and "malformed svg" in reason and "image 2" in reason
    frame = reader.load(refs[0])
    assert frame.image.shape == (36, 56) and frame.mask.dtype == np.uint8
    expected = np.zeros((36, 56), np.uint8)
    expected[8:21, 10:31] = 1
    np.testing.assert_array_equal(frame.mask, expected)
    assert reader.load(refs[1]).mask is None


def test_processed_layout_integer_names_upper_case_png(tmp_path, fx):
    for n in (2, 10, 1):
        fx.image(tmp_path / "image" / f"{n}.PNG", fx.noise((20, 30), n))
        fx.image(tmp_path / "mask" / f"{n}.PNG", fx.disk((20, 30), (10, 15), 4))
    reader = open_dataset("ddti", tmp_path)
    assert reader.layout == "processed"
    assert [r.source for r in reader.refs()] == ["image/1.PNG", "image/2.PNG", "image/10.PNG"]
    mask = reader.load(reader.refs()[0]).mask
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == (fx.disk((20, 30), (10, 15), 4) > 0).sum()


def test_samus_layout_with_split_files(tmp_path, fx):
    sub = tmp_path / "ThyroidNodule-DDTI"
    for stem in ("0001", "0002", "0003"):
        fx.image(sub / "img" / f"{stem}.png", fx.noise((16, 16)))
        fx.image(sub / "label" / f"{stem}.png", fx.disk((16, 16), (8, 8), 3, value=1))
    (tmp_path / "MainPatient").mkdir()
    (tmp_path / "MainPatient" / "train.txt").write_text("1/ThyroidNodule-DDTI/0001\n1/ThyroidNodule-DDTI/0002\n")
    (tmp_path / "MainPatient" / "test.txt").write_text("ThyroidNodule-DDTI/0003\nOtherSet/0001\n")
    reader = open_dataset("ddti", tmp_path)
    assert reader.layout == "samus"
    assert [(r.source, r.split) for r in reader.refs()] == [
        ("ThyroidNodule-DDTI/img/0001.png", "train"), ("ThyroidNodule-DDTI/img/0002.png", "train"),
        ("ThyroidNodule-DDTI/img/0003.png", "test")]
    assert set(np.unique(reader.load(reader.refs()[2]).mask)) == {0, 1}


def test_genuine_ddti_frame_through_the_samus_reader(ddti_sample):
    reader = open_dataset("ddti", ddti_sample)  # img/ + label/, no MainPatient/: tolerated
    (ref,) = reader.refs()
    assert reader.layout == "samus" and ref.has_mask and ref.split is None and not reader.problems
    frame = reader.load(ref)
    assert frame.image.shape == (512, 512) and frame.image.dtype == np.uint8
    assert set(np.unique(frame.mask)) == {0, 1} and frame.mask.sum() > 0
    assert frame.image.std() > 10  # a real B-mode frame, not a blank


def test_corrupt_image_raises_with_its_path(tmp_path, fx):
    fx.image(tmp_path / "img" / "a.png", fx.noise((8, 8)))
    fx.image(tmp_path / "label" / "a.png", fx.noise((8, 8)))
    (tmp_path / "img" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    fx.image(tmp_path / "label" / "b.png", fx.noise((8, 8)))
    reader = open_dataset("ddti", tmp_path)
    assert len(reader.refs()) == 2
    with pytest.raises(CorruptFrameError, match=r"img/b\.png.*cannot decode"):
        reader.load(reader.refs()[1])
    reader.load(reader.refs()[0])


def test_image_without_mask_is_recorded_not_dropped(tmp_path, fx):
    fx.image(tmp_path / "img" / "a.png", fx.noise((8, 8)))
    (tmp_path / "label").mkdir()
    reader = open_dataset("ddti", tmp_path)
    assert [r.has_mask for r in reader.refs()] == [False]
    assert reader.problems == [("img/a.png", "no label/ file of the same stem; listed without a mask")]
