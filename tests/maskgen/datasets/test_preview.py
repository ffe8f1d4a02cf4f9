"""`maskgen datasets show NAME --preview FILE`: frames at native size with their ground truth."""

from types import SimpleNamespace

import numpy as np
from click.testing import CliRunner
from PIL import Image

from maskgen.cli.datasets import datasets
from maskgen.common.contact_sheet import PALETTE
from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef
from maskgen.datasets.preview import UNEXPECTED_COLOUR, frame_tile, pick_refs
from maskgen.datasets.registry import open_dataset


def _busi(base, fx):
    for cls, n in (("benign", 3), ("malignant", 2), ("normal", 1)):
        for i in range(1, n + 1):
            fx.image(base / "Dataset_BUSI_with_GT" / cls / f"{cls} ({i}).png", fx.noise((40, 56), seed=i))
            mask = fx.disk((40, 56), (20, 10 + 8 * i), 6) if cls != "normal" else np.zeros((40, 56))
            fx.image(base / "Dataset_BUSI_with_GT" / cls / f"{cls} ({i})_mask.png", mask)


def test_preview_cli_draws_frames_with_their_ground_truth(tmp_path, fx):
    _busi(tmp_path / "busi", fx)
    out = tmp_path / "preview.png"
    res = CliRunner().invoke(datasets, ["show", "busi", "--root", str(tmp_path / "busi"), "--preview", str(out),
                                        "--preview-frames", "4"])
    assert res.exit_code == 0, res.output
    assert f"preview: {out}" in res.output and "frames          6" in res.output
    img = np.asarray(Image.open(out).convert("RGB"))
    # lesion contours (label 1 -> palette 0) are drawn
    assert (np.abs(img.astype(int) - PALETTE[0].astype(int)).max(-1) <= 12).sum() > 50


def test_tiles_are_the_readers_frames_and_masks_at_native_size(tmp_path, fx):
    _busi(tmp_path, fx)
    reader = open_dataset("busi", tmp_path)
    refs = pick_refs(reader.refs(), 4, reader.spec.classes)
    assert len(refs) == 4 and {r.label for r in refs} == {0, 1, 2}   # every class is shown
    tile = frame_tile(reader, refs[0])
    frame = reader.load(refs[0])
    assert tile.image.shape == (40, 56)
    np.testing.assert_array_equal(tile.masks[0], frame.mask == 1)
    assert tile.notes == ["lesion"] and "40x56" in tile.caption and "benign" in tile.caption


def test_pick_refs_spreads_over_the_listing_and_prefers_labelled_frames():
    refs = [FrameRef("x", f"v{i // 10}/f.png", i % 10, f"v{i // 10}", has_mask=i % 2 == 0) for i in range(40)]
    picked = pick_refs(refs, 4)
    assert all(r.has_mask for r in picked) and len({r.group for r in picked}) == 4


class _StubReader:
    spec = SimpleNamespace(name="stub", labels={1: "organ"}, classes=None)

    def load(self, ref):
        if ref.index == 1:
            raise CorruptFrameError(ref.source, "truncated")
        mask = np.zeros((8, 10), np.uint8)
        mask[1:3, 1:3] = 1
        mask[5:7, 5:9] = 255           # a threshold mistake: 255 where the manifest says 1
        return Frame(ref, np.zeros((8, 10), np.uint8), mask)


def test_mask_values_the_manifest_does_not_name_are_drawn_and_flagged():
    tile = frame_tile(_StubReader(), FrameRef("stub", "a.png", 0, has_mask=True))
    assert tile.notes == ["organ", "value 255?"] and tile.colours == [0, UNEXPECTED_COLOUR]
    assert "mask values [255] not in the manifest" in tile.caption and tile.masks[1].sum() == 8
    bad = frame_tile(_StubReader(), FrameRef("stub", "b.png", 1, has_mask=True))
    assert bad.caption == "unreadable: truncated" and len(bad.masks) == 0
