"""A picture of the phantom: frames beside the same frames with coloured anatomy masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from maskgen.common.files import atomic_path
from maskgen.datasets.letterbox import letterbox
from maskgen.phantom.abdomen import abdomen_scene
from maskgen.phantom.cardiac import heart_scene
from maskgen.phantom.lung import lung_scene
from maskgen.phantom.scene import ROLE_IDS, ROLES
from maskgen.phantom.softtissue import breast_scene, thyroid_scene

# one colour per anatomy role (RGB), in ROLES order
PALETTE = np.array([
    (255, 200, 0), (255, 40, 40), (0, 200, 255), (200, 0, 255), (120, 255, 120), (255, 140, 60),
    (255, 255, 255), (160, 160, 255), (255, 60, 160), (60, 255, 200), (255, 230, 120),
    (80, 140, 255), (190, 255, 60), (255, 120, 120)], dtype=np.float32)

EXAMPLES = (
    ("thyroid nodule (DDTI/TN3K)", lambda r: thyroid_scene(r, 240, 256, "malignant"), 0.0),
    ("breast benign (BUSI/UDIAT)", lambda r: breast_scene(r, 224, 288, "benign"), 0.0),
    ("breast malignant", lambda r: breast_scene(r, 224, 288, "malignant"), 0.0),
    ("A4C echo (CAMUS/HMC-QU)", lambda r: heart_scene(r, 272, 240, "4ch"), 0.0),
    ("lung regular (POCUS)", lambda r: lung_scene(r, 240, 256, "regular"), 0.3),
    ("lung pneumonia", lambda r: lung_scene(r, 240, 256, "pneumonia"), 0.3),
    ("lung covid19", lambda r: lung_scene(r, 240, 256, "covid19", "linear"), 0.3),
    ("Morison's pouch (Butterfly)", lambda r: abdomen_scene(r, 240, 256, "morisons_pouch"), 0.0),
)


def overlay(image: np.ndarray, anatomy: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H, W) uint8 frame + (H, W) role-id map -> (H, W, 3) uint8 with tinted regions and outlines."""
    rgb = np.repeat(image[..., None].astype(np.float32), 3, axis=2)
    ids = anatomy.astype(np.int64)
    colours = np.zeros_like(rgb)
    colours[ids > 0] = PALETTE[ids[ids > 0] - 1]
    inside = ids > 0
    rgb[inside] = (1 - alpha) * rgb[inside] + alpha * colours[inside]
    edge = inside & (ndimage.grey_erosion(ids, size=3) != ndimage.grey_dilation(ids, size=3))
    rgb[edge] = colours[edge]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_preview(path: str | Path, seed: int = 0, tile: int = 208) -> Path:
    """Write a PNG grid (2 rows x 4 examples, each frame | frame with masks) to ``path``."""
    tiles = []
    for k, (title, make, t) in enumerate(EXAMPLES):
        scene = make(np.random.default_rng([seed, 99, k]))
        image, st = scene.frame(t)
        anatomy = scene.anatomy(st)
        raw, _ = letterbox(image, tile)
        ids, _ = letterbox(anatomy, tile, nearest=True)
        pair = np.concatenate([np.repeat(raw[..., None], 3, axis=2), overlay(raw, ids)], axis=1)
        canvas = Image.fromarray(np.pad(pair, ((18, 4), (2, 2), (0, 0))))
        ImageDraw.Draw(canvas).text((6, 3), title, fill=(255, 255, 255))
        tiles.append(np.asarray(canvas))
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, len(tiles), 4)]
    grid = np.concatenate(rows, axis=0)
    legend = Image.fromarray(np.zeros((22, grid.shape[1], 3), dtype=np.uint8))
    draw, x = ImageDraw.Draw(legend), 6
    for name in ROLES:
        colour = tuple(int(c) for c in PALETTE[ROLE_IDS[name] - 1])
        draw.rectangle((x, 6, x + 10, 16), fill=colour)
        draw.text((x + 14, 5), name, fill=(255, 255, 255))
        x += 18 + 7 * len(name)
    grid = np.concatenate([grid, np.asarray(legend)], axis=0)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path
