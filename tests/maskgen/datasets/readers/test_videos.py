"""HMC-QU (.avi + A4C.xlsx + .mat masks over one cycle) and POCUS (videos at 3 Hz + images)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from maskgen.datasets.readers.pocus import group_of, sampled_indices
from maskgen.datasets.readers.video import video_info
from maskgen.datasets.registry import open_dataset


def _ramp(t: int, shape=(48, 64)) -> np.ndarray:
    """A flat frame whose brightness encodes its index (survives lossy coding)."""
    return np.full(shape, 20 + 20 * t, np.uint8)


@pytest.fixture
def hmcqu(tmp_path, fx):
    base = tmp_path / "HMC-QU"
    for echo, n in (("ES0001 _4CH_1", 8), ("ES0002_4CH", 6)):
        fx.video(base / "A4C" / f"{echo}.avi", np.stack([_ramp(t) for t in range(n)]))
    masks = np.zeros((4, 224, 224), np.uint8)
    for f in range(4):
        masks[f, 10 * f: 10 * f + 50, 100:150] = 1  # a wall that moves down frame by frame
    (base / "LV Ground-truth Segmentation Masks").mkdir()
    savemat(base / "LV Ground-truth Segmentation Masks" / "Mask_ES0001 _4CH_1.mat", {"predicted": masks})
    fx.xlsx(base / "A4C.xlsx", [["ECHO", "SEG1", "SEG2", "Start", "End", "LV masks"],
                               ["ES0001 _4CH_1", 0, 1, 3, 6, "✓"], ["ES0002_4CH", 1, 1, 1, 5, "✓"]])
    return tmp_path, masks


def test_hmcqu_masks_align_to_the_annotated_cycle(hmcqu):
    root, masks = hmcqu
    reader = open_dataset("hmcqu", root)
    refs = reader.refs()
    first = [r for r in refs if r.group == "ES0001 _4CH_1"]
    assert [r.index for r in first] == list(range(8))
    assert [r.has_mask for r in first] == [False, False, True, True, True, True, False, False]
    assert not any(r.has_mask for r in refs if r.group == "ES0002_4CH")
    (path, reason), = reader.problems  # ES0002 is marked but its .mat is missing
    assert path == "HMC-QU/A4C/ES0002_4CH.avi" and "Mask_ES0002_4CH.mat is missing" in reason
    frame = reader.load(first[4])  # 1-based frame 5 = 3rd mask of the cycle
    assert frame.image.shape == (48, 64) and abs(int(frame.image.mean()) - 100) <= 3
    expected = masks[2][(np.arange(48) * 224) // 48][:, (np.arange(64) * 224) // 64]
    assert frame.mask.shape == (48, 64) and set(np.unique(frame.mask)) == {0, 1}
    assert (frame.mask != expected).mean() < 0.03
    assert reader.load(first[0]).mask is None


def test_pocus_classes_vir_excluded_video_groups_and_3hz(tmp_path, fx):
    videos, images = tmp_path / "data" / "pocus_videos", tmp_path / "data" / "pocus_images"
    fx.video(videos / "convex" / "Cov_case1.mp4", np.stack([_ramp(t % 10, (32, 32)) for t in range(100)]), fps=30)
    fx.video(videos / "linear" / "Reg_case2.avi", np.stack([_ramp(t, (32, 32)) for t in range(7)]), fps=6)
    fx.video(videos / "convex" / "Vir_case3.mp4", np.stack([_ramp(t, (32, 32)) for t in range(5)]), fps=6)
    fx.image(images / "convex" / "pne_case4.png", fx.noise((30, 40)))
    fx.image(images / "convex" / "Cov_case1.mp4.frame3.jpg", fx.noise((30, 40)))
    (images / "linear").mkdir(parents=True)
    (images / "linear" / "notes.txt").write_text("x")
    reader = open_dataset("pocus", tmp_path)
    with pytest.MonkeyPatch.context() as mp:  # listing reads container metadata only
        mp.setattr("maskgen.datasets.readers.video.decode_gray", lambda *a: pytest.fail("decoded while listing"))
        refs = reader.refs()
    cov = [r for r in refs if r.source.endswith("Cov_case1.mp4")]
    assert [r.index for r in cov] == list(range(0, 100, 10))
    reg = [r for r in refs if r.source.endswith("Reg_case2.avi")]
    assert [r.index for r in reg] == [0, 2, 4, 6] and {r.label for r in reg} == {2}
    assert not any("Vir" in r.source for r in refs)
    assert reader.excluded == [("data/pocus_videos/convex/Vir_case3.mp4", "Vir (viral) is not one of the 3 classes")]
    assert reader.problems == [("data/pocus_images/linear/notes.txt", "neither an image nor a video; skipped")]
    image_refs = [r for r in refs if "pocus_images" in r.source]
    assert [(r.group, r.label) for r in image_refs] == [("Cov_case1", 0), ("pne_case4", 1)]
    assert {r.group for r in cov} == {"Cov_case1"}  # same group as the image cut from it
    frame = reader.load(cov[3])  # frame 30 -> value 20 + 20 * (30 % 10) = 20
    assert frame.image.shape == (32, 32) and abs(int(frame.image.mean()) - 20) <= 3
    assert abs(int(reader.load(reg[2]).image.mean()) - 100) <= 3


def test_sampling_rule_and_group_of():
    assert sampled_indices(100, 30.0) == list(range(0, 100, 10))
    assert sampled_indices(1000, 30.0) == list(range(0, 300, 10))  # at most 30 frames
    assert sampled_indices(5, 2.0) == [0, 1, 2, 3, 4]
    assert group_of("Pne_x.mp4.gif") == "Pne_x"


def test_corrupt_video_is_a_problem_not_a_crash(tmp_path, fx):
    base = tmp_path / "HMC-QU" / "A4C"
    base.mkdir(parents=True)
    (base / "broken.avi").write_bytes(b"RIFF\x00\x00garbage")
    fx.video(base / "ok.avi", np.stack([_ramp(t) for t in range(3)]))
    reader = open_dataset("hmcqu", tmp_path)
    assert [r.source for r in reader.refs()] == ["HMC-QU/A4C/ok.avi"] * 3
    assert ("HMC-QU/A4C/broken.avi" in dict(reader.problems)
            and "HMC-QU/A4C.xlsx" in dict(reader.problems))
    assert video_info(base / "ok.avi")[0] == 3
