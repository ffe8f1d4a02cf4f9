"""BUSI, UDIAT, TN3K, TG3K: still-image datasets with PNG/JPEG masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskgen.datasets.frames import CorruptFrameError
from maskgen.datasets.registry import open_dataset


def test_busi_masks_or_merged_rgb_to_gray_and_classes(tmp_path, fx):
    base = tmp_path / "Dataset_BUSI_with_GT"
    rgb = np.zeros((20, 24, 3), np.uint8)
    rgb[..., 0] = 200
    fx.image(base / "benign" / "benign (2).png", rgb)
    fx.image(base / "benign" / "benign (2)_mask.png", fx.disk((20, 24), (5, 5), 3))
    fx.image(base / "benign" / "benign (2)_mask_1.png", fx.disk((20, 24), (14, 18), 3))
    fx.image(base / "benign" / "benign (10).png", fx.noise((20, 24)))
    fx.image(base / "benign" / "benign (10)_mask.png", fx.disk((20, 24), (10, 10), 4))
    fx.image(base / "malignant" / "malignant (1).png", fx.noise((20, 24)))
    fx.image(base / "malignant" / "malignant (1)_mask.png", fx.disk((20, 24), (10, 10), 4))
    fx.image(base / "normal" / "normal (1).png", fx.noise((20, 24)))
    fx.image(base / "normal" / "normal (1)_mask.png", np.zeros((20, 24)))
    fx.image(base / "normal" / "normal (2).png", fx.noise((20, 24)))  # mask missing
    reader = open_dataset("busi", tmp_path)
    refs = reader.refs()
    assert [r.source.rsplit("/", 1)[1] for r in refs] == [
        "benign (2).png", "benign (10).png", "malignant (1).png", "normal (1).png", "normal (2).png"]
    assert [r.label for r in refs] == [0, 0, 1, 2, 2]
    assert [r.has_mask for r in refs] == [True, True, True, True, False]
    assert len({r.group for r in refs}) == 5
    assert reader.problems == [(refs[4].source, "no _mask.png beside the image; listed without a mask")]
    frame = reader.load(refs[0])
    assert frame.image.shape == (20, 24) and int(frame.image[0, 0]) == round(0.299 * 200)
    merged = (fx.disk((20, 24), (5, 5), 3) | fx.disk((20, 24), (14, 18), 3)) > 0
    np.testing.assert_array_equal(frame.mask, merged.astype(np.uint8))
    assert reader.load(refs[3]).mask.sum() == 0


def _jpeg_mask(fx, path, shape):
    """A JPEG 0/255 disk: compression leaves values between 0 and 255 on the edge."""
    fx.image(path, fx.disk(shape, (shape[0] // 2, shape[1] // 2), 9), quality=50)
    return fx.disk(shape, (shape[0] // 2, shape[1] // 2), 9) > 0


def test_tn3k_jpeg_threshold_csv_classes_official_folds(tmp_path, fx):
    base = tmp_path / "tn3k"
    for part, n in (("trainval", 5), ("test", 2)):
        for i in range(n):
            fx.image(base / f"{part}-image" / f"{i:04d}.jpg", fx.noise((40, 48), i))
            truth = _jpeg_mask(fx, base / f"{part}-mask" / f"{i:04d}.jpg", (40, 48))
    (base / "label4trainval.csv").write_text("id,label\n" + "".join(f"{i:04d},{i % 2}\n" for i in range(5)))
    (base / "label4test.csv").write_text("0000,1\n0001,0\n")
    for k in range(5):
        (base / f"tn3k-trainval-fold{k}.json").write_text(json.dumps(
            {"train": [i for i in range(5) if i % 5 != k], "val": [i for i in range(5) if i % 5 == k]}))
    reader = open_dataset("tn3k", tmp_path)
    refs = reader.refs()
    assert [r.split for r in refs] == ["train"] * 5 + ["test"] * 2
    assert [r.label for r in refs] == [0, 1, 0, 1, 0, 1, 0] and not reader.problems
    assert reader.official_folds() == {refs[i].source: i for i in range(5)}
    mask = reader.load(refs[6]).mask
    assert set(np.unique(mask)) == {0, 1}
    assert abs(int(mask.sum()) - int(truth.sum())) <= 4  # > 127 keeps the lesion


def test_tg3k_json_indexes_the_integer_sorted_list(tmp_path, fx):
    base = tmp_path / "tg3k"
    for n in (0, 2, 10, 1):
        fx.image(base / "thyroid-image" / f"{n:04d}.jpg", fx.noise((30, 30), n))
        _jpeg_mask(fx, base / "thyroid-mask" / f"{n:04d}.jpg", (30, 30))
    (base / "tg3k-trainval.json").write_text(json.dumps({"train": [0, 1, 3], "val": [2, 7]}))
    reader = open_dataset("tg3k", tmp_path)
    refs = reader.refs()
    assert [r.source for r in refs] == [f"tg3k/thyroid-image/{n:04d}.jpg" for n in (0, 1, 2, 10)]
    assert [r.split for r in refs] == ["train", "train", "val", "train"]
    assert len({r.group for r in refs}) == 4  # fewer frames than blocks: one frame a block
    assert len(reader.problems) == 1 and "index 7" in reader.problems[0][1]
    mask = reader.load(refs[3]).mask
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}


def test_tg3k_groups_are_contiguous_blocks_of_the_sorted_list():
    from maskgen.datasets.folds import grouped_split
    from maskgen.datasets.readers.tg3k import VIDEO_BLOCKS, block_groups

    groups = block_groups(3585)
    assert len(set(groups)) == VIDEO_BLOCKS == 16
    runs = [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]]
    assert len(runs) == len(set(runs))  # each block is one contiguous run
    sizes = [groups.count(g) for g in set(groups)]
    assert max(sizes) - min(sizes) <= 1
    held = grouped_split(block_groups(60), 0.2, seed=0)
    for g in set(block_groups(60)):  # a block is held out whole or not at all
        assert len({bool(h) for h, k in zip(held, block_groups(60), strict=True) if k == g}) == 1
    assert 0 < sum(held) < 60


def test_udiat_xlsx_types_and_gt_threshold(tmp_path, fx):
    for n in (1, 2, 3):
        fx.image(tmp_path / "original" / f"{n:06d}.png", fx.noise((16, 20), n))
        fx.image(tmp_path / "GT" / f"{n:06d}.png", fx.disk((16, 20), (8, 10), 3, value=255 - n))
    fx.xlsx(tmp_path / "DatasetB.xlsx", [["Image", "Type", "Diagnosis"], ["000001", "Benign", "FA"],
                                         [2, "Malignant", "IDC"], ["000003.png", "benign", "cyst"]])
    reader = open_dataset("udiat", tmp_path)
    refs = reader.refs()
    assert [r.label for r in refs] == [0, 1, 0] and all(r.has_mask for r in refs)
    assert not reader.problems
    np.testing.assert_array_equal(reader.load(refs[1]).mask, (fx.disk((16, 20), (8, 10), 3) > 0).astype(np.uint8))


def test_udiat_missing_xlsx_recorded_and_mask_size_mismatch_is_corrupt(tmp_path, fx):
    fx.image(tmp_path / "original" / "000001.png", fx.noise((16, 20)))
    fx.image(tmp_path / "GT" / "000001.png", fx.noise((10, 10)))
    reader = open_dataset("udiat", tmp_path)
    assert reader.refs()[0].label is None
    assert reader.problems[0][0] == "DatasetB.xlsx" and "missing" in reader.problems[0][1]
    with pytest.raises(CorruptFrameError, match="original/000001.png.*differ in size"):
        reader.load(reader.refs()[0])


def test_listing_decodes_no_pixels(tmp_path, fx, monkeypatch):
    base = tmp_path / "tn3k"
    for i in range(3):
        fx.image(base / "test-image" / f"{i:04d}.jpg", fx.noise((8, 8)))
        fx.image(base / "test-mask" / f"{i:04d}.jpg", fx.noise((8, 8)))
    reader = open_dataset("tn3k", tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("pixels decoded while listing")

    monkeypatch.setattr("PIL.Image.open", refuse)
    assert len(reader.refs()) == 3
