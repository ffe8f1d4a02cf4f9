"""``maskgen score``: Dice against labelled masks, anatomy-free baselines, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from maskgen.datasets.frames import Frame, FrameRef
from maskgen.generate.scoring import (
    BASELINES,
    LPSAM,
    ScoreError,
    baseline_masks,
    clip_baseline,
    dice_many,
    report_markdown,
    score_frames,
    score_store,
    threshold_components,
)
from maskgen.store import open_store, pack_masks, store_attributes
from maskgen.store.writer import create_store, write_manifest


def disc(cy, cx, r, size=64):
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def test_dice_many_values():
    target = np.zeros((8, 8), bool)
    target[:4] = True                                     # 32 px
    masks = np.zeros((3, 8, 8), bool)
    masks[0] = target
    masks[1, :2] = True                                   # 16 px inside: 2*16/48
    d = dice_many(masks, target)
    assert d.tolist() == pytest.approx([1.0, 2 * 16 / 48, 0.0])
    assert dice_many(np.zeros((0, 8, 8), bool), target).shape == (0,)


def speckled_frame(rng, size=64):
    """A bright speckled field of view with a dark round lesion and black outside the sector."""
    img = rng.normal(150, 40, (size, size))
    lesion = disc(30, 36, 12, size)
    img[lesion] = rng.normal(40, 20, lesion.sum())
    img[:, :4] = 0                                        # outside the field of view
    return np.clip(img, 1, 255).astype(np.uint8) * (np.arange(size)[None, :] >= 4), lesion


def test_threshold_components_find_a_dark_lesion_in_speckle():
    img, lesion = speckled_frame(np.random.default_rng(0))
    masks = threshold_components(img.astype(np.uint8), k=8)
    assert 1 <= len(masks) <= 8 and masks.dtype == bool
    assert dice_many(masks, lesion).max() > 0.8
    areas = masks.sum(axis=(1, 2))
    assert (np.diff(areas) <= 0).all()                    # largest first
    assert threshold_components(np.zeros((32, 32), np.uint8), k=4).shape == (0, 32, 32)


def test_baselines_have_the_promised_shapes():
    rng = np.random.default_rng(1)
    images = np.stack([speckled_frame(rng)[0] for _ in range(2)]).astype(np.uint8)
    grid2, grid4, sp = (baseline_masks(n, images, 16) for n in ("grid2x2", "grid4x4", "superpixel"))
    assert [m.shape[0] for m in grid2] == [4, 4] and [m.shape[0] for m in grid4] == [16, 16]
    for masks in (grid2[0], grid4[0]):                   # a partition of the frame
        assert (masks.sum(0) == 1).all()
    assert all(1 <= len(m) <= 16 and (m.sum(0) <= 1).all() for m in sp)
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_masks("nope", images, 4)


def test_score_frames_perfect_store_masks_beat_baselines():
    rng = np.random.default_rng(2)
    img, lesion = speckled_frame(rng)
    label_map = lesion.astype(np.uint8)
    other = disc(50, 10, 5)
    store_masks = [np.stack([other, lesion]), np.zeros((0, 64, 64), bool)]   # the lesion in slot 1
    targets, stats = score_frames(np.stack([img, img]).astype(np.uint8), store_masks, [label_map, None],
                                  ["a#0", "b#0"], ["benign", None], {1: "lesion"}, k=4)
    assert len(targets) == 1 and len(stats) == 2          # the unlabelled frame is only counted
    t = targets[0]
    assert t.best[LPSAM] == 1.0 and t.top[LPSAM] == pytest.approx(0.0)
    assert all(t.best[b] < 1.0 for b in BASELINES)
    assert stats[0].counts[LPSAM] == 2 and stats[1].counts[LPSAM] == 0
    assert stats[0].coverage[LPSAM][1] == pytest.approx(lesion.sum() / 64 ** 2)


def test_baselines_are_clipped_to_the_frame_like_the_store():
    """Given the frames' content regions, a baseline mask in the padding is dropped and one
    across the frame's edge is cut; without regions the baselines cover the whole square."""
    rng = np.random.default_rng(3)
    img, lesion = speckled_frame(rng)
    region = np.zeros((64, 64), bool)
    region[:, :32] = True                                   # the frame fills the left half
    args = (np.stack([img]).astype(np.uint8), [np.stack([lesion])], [lesion.astype(np.uint8)], ["a#0"],
            [None], {1: "lesion"}, 4, ("grid4x4",))
    _, (full,) = score_frames(*args)
    _, (clipped,) = score_frames(*args, regions=region[None])
    assert full.counts["grid4x4"] == 16 and clipped.counts["grid4x4"] == 8
    assert sum(clipped.coverage["grid4x4"]) == pytest.approx(0.5)
    masks = clip_baseline(np.stack([np.ones((64, 64), bool), ~region]), region)
    assert masks.shape == (1, 64, 64) and (masks[0] == region).all()


class _Reader:
    """A labelled reader over in-memory frames (registry-reader interface)."""

    def __init__(self, frames, name="busi", labels=None, classes=None):
        self.name, self.root = name, Path("/data")
        self.spec = SimpleNamespace(labels=labels or {1: "lesion"}, classes=classes)
        self._frames = frames

    def refs(self):
        return [f.ref for f in self._frames]

    def load(self, ref):
        return next(f for f in self._frames if f.ref == ref)


def _store(path, frames, store_masks, size=64, k=4, dataset="busi"):
    from maskgen.datasets.letterbox import letterbox

    root = create_store(path, len(frames), size, k, store_attributes(k, size, "0" * 64, {"dataset": dataset}))
    rows = []
    for i, (frame, masks) in enumerate(zip(frames, store_masks, strict=True)):
        img = letterbox(frame.image, size)[0]
        packed = np.zeros((k, size, size // 8), np.uint8)
        packed[:len(masks)] = pack_masks(masks)
        scores = np.full(k, np.nan, np.float32)
        scores[:len(masks)] = np.linspace(0.9, 0.5, len(masks))
        root["images"][i], root["masks"][i], root["scores"][i], root["counts"][i] = img, packed, scores, len(masks)
        rows.append({"frame_id": frame.ref.frame_id, "row": i, "dataset": dataset, "source": frame.ref.source,
                     "group": frame.ref.group, "frame_index": 0, "orig_height": frame.image.shape[0],
                     "orig_width": frame.image.shape[1], "status": "ok", "reason": "", "mask_count": len(masks),
                     "mean_score": float(np.nanmean(scores)) if len(masks) else float("nan")})
    write_manifest(path, rows)
    return open_store(path)


def _frames(n=3):
    rng = np.random.default_rng(5)
    frames = []
    for i in range(n):
        wide = np.zeros((48, 64), np.uint8)               # not square: the label map is letter-boxed too
        img, lesion = speckled_frame(rng)
        wide[:, :] = img[8:56]
        mask = lesion[8:56].astype(np.uint8)
        frames.append(Frame(FrameRef("busi", f"f{i}.png", 0, f"p{i}", label=i % 2, has_mask=True), wide, mask))
    return frames


def test_score_store_end_to_end_and_mismatches(tmp_path):
    from maskgen.datasets.letterbox import letterbox

    frames = _frames()
    truth = [letterbox(f.mask, 64, nearest=True)[0] > 0 for f in frames]
    store = _store(tmp_path / "s", frames, [truth[0][None], truth[1][None] & False, np.zeros((0, 64, 64), bool)])
    reader = _Reader(frames, classes={0: "benign", 1: "malignant"})
    report = score_store(store, reader)
    best = report["groups"]["all"][LPSAM]
    assert report["targets"] == 3 and report["frames_scored"] == 3
    assert best["best_dice"] == pytest.approx(1 / 3) and best["hit_rate"] == pytest.approx(1 / 3)
    assert set(report["groups"]) == {"all", "class=benign", "class=malignant"}
    assert report["groups"]["class=malignant"][LPSAM]["targets"] == 1
    assert report["margin"]["best_baseline"] in BASELINES
    json.dumps(report)
    text = report_markdown(report)
    assert "grid 4x4" in text and "| LP-SAM (the store) | 0.333 |" in text
    assert score_store(store, reader, limit=1)["targets"] == 1
    with pytest.raises(ScoreError, match="holds frames of 'busi', not 'udiat'"):
        score_store(store, _Reader(frames, name="udiat"))
    with pytest.raises(ScoreError, match="not in 'busi'"):
        score_store(store, _Reader(frames[:2]))


@pytest.fixture(scope="module")
def phantom_busi(tmp_path_factory):
    from maskgen.phantom.generate import generate

    out = tmp_path_factory.mktemp("phantom")
    generate(out, "quick", datasets=("busi",), show_progress=False)
    return out / "busi"


def test_maskgen_score_cli_on_a_phantom_store(tmp_path, phantom_busi, one_thread):
    from maskgen.cli.main import main
    from maskgen.lpsam.testing import make_random_adapt_dir

    adapt = make_random_adapt_dir(tmp_path / "lpsam", seed=1)
    runner = CliRunner()
    store = tmp_path / "store"
    ran = runner.invoke(main, ["run", "--dataset", "busi", "--root", str(phantom_busi), "--checkpoint", str(adapt),
                               "--out", str(store), "--limit", "6", "--no-progress", "--threads", "1"])
    assert ran.exit_code == 0, ran.output
    res = runner.invoke(main, ["score", str(store), "--root", str(phantom_busi), "--no-progress",
                               "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rep.json").read_text())
    assert report["dataset"] == "busi" and report["frames_scored"] == 6 and report["targets"] >= 1
    assert set(report["methods"]) == {LPSAM, *BASELINES}
    assert (tmp_path / "rep.md").read_text().startswith("## Mask quality")
    assert "best-of-K Dice" in res.output
    bad = runner.invoke(main, ["score", str(store), "--dataset", "udiat", "--root", str(phantom_busi)])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
