"""Contact sheets: contours in the mask's palette colour, notes inside the mask, readable names."""

import numpy as np
import pytest
from PIL import Image

from maskgen.common.contact_sheet import PALETTE, Tile, draw_sheet, inner_point, shorten
from maskgen.store import open_store, unpack_masks
from maskgen.store.inspection import contact_sheet, store_tile


def _has_colour(img: np.ndarray, rgb, tol=12) -> int:
    return int((np.abs(img.astype(int) - np.asarray(rgb, int)).max(-1) <= tol).sum())


def test_sheet_draws_each_mask_contour_in_its_palette_colour(tmp_path):
    image = np.full((64, 64), 40, np.uint8)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 8:30, 8:30] = True
    masks[1, 36:60, 36:60] = True
    out = draw_sheet([Tile(image, masks, "a/b/frame.png#3", "row 0", notes=["0.91", "0.42"], colours=[3, 7])],
                     tmp_path / "s.png", title="t", legend={"slot 3": 3, "slot 7": 7})
    img = np.asarray(Image.open(out).convert("RGB"))
    assert _has_colour(img, PALETTE[3]) > 50 and _has_colour(img, PALETTE[7]) > 50
    assert _has_colour(img, PALETTE[0]) == 0          # colours are the tile's, not slot order


def test_inner_point_lies_inside_rings_and_none_for_empty():
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    ring = (r > 10) & (r < 16)
    y, x = inner_point(ring)
    assert ring[int(y), int(x)]
    assert inner_point(np.zeros((4, 4), bool)) is None


def test_tile_checks_shapes_and_counts():
    with pytest.raises(ValueError, match="2 masks need 2 colours"):
        Tile(np.zeros((8, 8), np.uint8), np.zeros((2, 8, 8), bool), "x", colours=[1])
    with pytest.raises(ValueError, match=r"\(H, W\) image"):
        Tile(np.zeros((8, 8, 3), np.uint8), np.zeros((0, 8, 8), bool), "x")
    assert shorten("dataset/very/long/path/frame_0001.png#5", 20).endswith("frame_0001.png#5")


def test_store_tiles_carry_the_store_masks_and_scores(toy_store, tmp_path):
    store = open_store(toy_store)
    row = int(store.usable_rows()[2])
    data = store.read(row, row + 1)
    count = int(data["counts"][0])
    tile = store_tile(store, row, {"frame_id": "toy/x.png#0", "status": "ok", "reason": ""})
    np.testing.assert_array_equal(tile.masks, unpack_masks(data["masks"][0, :count]))
    assert tile.notes == [f"{s:.2f}" for s in data["scores"][0, :count]]
    assert tile.caption == f"row {row} · {count} masks" and tile.title == "toy/x.png#0"
    sheet = contact_sheet(store, tmp_path / "sheet.png", n=4, columns=2)
    img = np.asarray(Image.open(sheet).convert("RGB"))
    assert _has_colour(img, PALETTE[0]) > 20          # slot 0 contours are drawn


def test_summary_figure_of_a_store_without_masks(tmp_path):
    from maskgen.store.inspection import StoreSummary, summary_figure

    out = summary_figure(StoreSummary(frames=3, failed=3), k=4, size=64, out=tmp_path / "p.png")
    assert Image.open(out).size[0] > 1000
