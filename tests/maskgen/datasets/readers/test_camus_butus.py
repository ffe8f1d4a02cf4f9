"""CAMUS (2023 NIfTI with its (W, H, T) transpose; 2019 MetaImage) and both Butterfly layouts."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from maskgen.datasets.frames import CorruptFrameError
from maskgen.datasets.readers import metaimage
from maskgen.datasets.registry import open_dataset

H, W, T = 12, 20, 4


def _upright(t: int) -> np.ndarray:
    """An asymmetric (H, W) frame: bright top-left corner, value t in the last row."""
    img = np.full((H, W), 50 + t, np.uint8)
    img[:3, :5] = 250
    return img


def _labels() -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    lab[2:5, 3:9], lab[6:8, 3:9], lab[9:11, 12:15] = 1, 2, 3
    return lab


def _nii(path, frames: np.ndarray) -> None:
    """(T, H, W) upright frames -> NIfTI stored (W, H, T) as CAMUS 2023 does."""
    data = np.transpose(frames, (2, 1, 0))
    nib.save(nib.Nifti1Image(data[..., 0] if data.shape[2] == 1 else data, np.eye(4)), str(path))


@pytest.fixture
def camus2023(tmp_path):
    for pid in ("patient0001", "patient0002"):
        folder = tmp_path / "database_nifti" / pid
        folder.mkdir(parents=True)
        for view in ("2CH", "4CH"):
            for part in ("ED", "ES"):
                _nii(folder / f"{pid}_{view}_{part}.nii.gz", _upright(0)[None])
                _nii(folder / f"{pid}_{view}_{part}_gt.nii.gz", _labels()[None])
            seq = np.stack([_upright(t) for t in range(T)])
            _nii(folder / f"{pid}_{view}_half_sequence.nii.gz", seq)
            _nii(folder / f"{pid}_{view}_half_sequence_gt.nii.gz", np.stack([_labels()] * T))
            (folder / f"Info_{view}.cfg").write_text("ED: 1\nES: 4\nNbFrame: 4\nSex: F\nImageQuality: Good\n")
    split = tmp_path / "database_split"
    split.mkdir()
    (split / "subgroup_training.txt").write_text("patient0001\n")
    (split / "subgroup_testing.txt").write_text("patient0002\n")
    return tmp_path


def test_camus_2023_transpose_gives_upright_frames(camus2023):
    reader = open_dataset("camus", camus2023)
    refs = reader.refs()
    assert reader.layout == "2023" and not reader.problems
    assert len(refs) == 2 * 2 * (1 + 1 + T) and all(r.has_mask for r in refs)
    assert {r.group for r in refs} == {"patient0001", "patient0002"}
    assert {r.split for r in refs if r.group == "patient0002"} == {"test"}
    seq = [r for r in refs if "4CH_half_sequence" in r.source and r.group == "patient0001"]
    assert [r.index for r in seq] == list(range(T))
    frame = reader.load(seq[2])
    assert frame.image.shape == (H, W)
    np.testing.assert_array_equal(frame.image, _upright(2))
    np.testing.assert_array_equal(frame.mask, _labels())
    assert set(np.unique(frame.mask)) == {0, 1, 2, 3}
    assert frame.extras["view"] == "4CH" and frame.extras["info"]["ImageQuality"] == "Good"


def test_camus_2019_metaimage(tmp_path):
    for split, pid, labelled in (("training", "patient0001", True), ("testing", "patient0451", False)):
        folder = tmp_path / split / pid
        folder.mkdir(parents=True)
        for view in ("2CH", "4CH"):
            for part in ("ED", "ES"):
                metaimage.write_volume(folder / f"{pid}_{view}_{part}.mhd", _upright(1))
                if labelled:
                    metaimage.write_volume(folder / f"{pid}_{view}_{part}_gt.mhd", _labels())
            metaimage.write_volume(folder / f"{pid}_{view}_sequence.mhd",
                                   np.stack([_upright(t) for t in range(T)]), compressed=True)
    reader = open_dataset("camus", tmp_path)
    refs = reader.refs()
    assert reader.layout == "2019" and len(refs) == 2 * 2 * (2 + T)
    assert sum(r.has_mask for r in refs) == 4 and {r.split for r in refs} == {"train", "test"}
    ed = next(r for r in refs if r.source.endswith("patient0001_2CH_ED.mhd"))
    frame = reader.load(ed)
    np.testing.assert_array_equal(frame.image, _upright(1))
    np.testing.assert_array_equal(frame.mask, _labels())
    seq = [r for r in refs if r.source.endswith("patient0451_4CH_sequence.mhd")]
    np.testing.assert_array_equal(reader.load(seq[3]).image, _upright(3))
    assert reader.load(seq[3]).mask is None


def test_metaimage_round_trip_and_truncated_raw(tmp_path):
    vol = np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    metaimage.write_volume(tmp_path / "v.mhd", vol)
    np.testing.assert_array_equal(metaimage.read_volume(tmp_path / "v.mhd"), vol)
    assert metaimage.frame_count(tmp_path / "v.mhd") == 3
    (tmp_path / "v.raw").write_bytes(vol.tobytes()[:50])
    with pytest.raises(CorruptFrameError, match=r"v\.raw.*50 bytes"):
        metaimage.read_volume(tmp_path / "v.mhd")


def test_butus_uscl_and_grandhack_layouts(tmp_path, fx):
    for video in ("Cov-a_mp4", "Reg-b_mp4"):
        for n in (10, 2, 1):
            fx.image(tmp_path / "Butte" / video / f"{video}_frame{n}.jpg", fx.noise((10, 12)))
    for split, patient, view in (("training", "3", "plax"), ("training", "12", "lungs"), ("test", "3", "ivc")):
        fx.image(tmp_path / "butterfly_dataset" / split / patient / view / "f0.png", fx.noise((10, 12)))
    reader = open_dataset("butus", tmp_path)
    refs = reader.refs()
    assert reader.layout == "uscl+grandhack" and not reader.problems
    assert [r.source for r in refs[:3]] == [f"Butte/Cov-a_mp4/Cov-a_mp4_frame{n}.jpg" for n in (1, 2, 10)]
    assert [r.group for r in refs] == ["Cov-a_mp4"] * 3 + ["Reg-b_mp4"] * 3 + ["patient3", "patient12", "patient3"]
    assert [r.split for r in refs[6:]] == ["train", "train", "test"]
    assert all(not r.has_mask and r.label is None for r in refs)
    frame = reader.load(refs[-1])
    assert frame.image.shape == (10, 12) and frame.extras["view"] == "ivc"
    only_uscl = open_dataset("butus", tmp_path / "Butte")
    assert only_uscl.layout == "uscl" and len(only_uscl.refs()) == 6
