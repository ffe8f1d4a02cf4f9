"""Lung ultrasound (POCUS) on a convex or linear probe: three patterns with shared nuisances.

Everything below the pleura is drawn in beam coordinates (depth along the scan line), as the
artefacts are: A-lines are reverberations of the pleura at multiples of its depth, B-lines
are comet tails along a scan line from the pleura to the bottom of the image.

    regular    thin smooth pleura sliding over time, A-lines, at most one B-line
    pneumonia  a tissue-like consolidation (hepatisation) under the pleura with a shredded deep
               margin and bright branching air bronchograms; sometimes an effusion
    covid19    thickened irregular pleura, several B-lines in patches, small subpleural
               consolidations; A-lines persist in the spared areas

Ribs (bright arc + full shadow), gain, depth, probe type and chest-wall thickness vary
independently of the class.
"""

from __future__ import annotations

import numpy as np

from maskgen.phantom.render import Structure, Tissue
from maskgen.phantom.scene import Scene, band, new_scene, smooth_path
from maskgen.phantom.shapes import Band, Blob, Curve, random_harmonics

PATTERNS = ("covid19", "pneumonia", "regular")
AIR = Tissue(echo=0.05, texture=0.8, streak=0.4, soft=1.5)
RIB = Tissue(echo=4.0, block=1.0, specular=2.5, texture=0.1, soft=1.0)


def _pleura(depth: float, thick: float, irregular: float, rng) -> Band:
    waves = ((irregular * rng.uniform(0.5, 1.0), float(rng.uniform(8, 20)), float(rng.uniform(0, 6.3))),
             (irregular * rng.uniform(0.3, 0.8), float(rng.uniform(20, 60)), float(rng.uniform(0, 6.3))))
    return Band(Curve(depth), Curve(depth + thick, 0.0, waves))


def _vertical(x: float, half_width: float, top: float, bottom: float) -> Band:
    return Band(Curve(top), Curve(bottom), (x - half_width, x + half_width))


def lung_scene(rng: np.random.Generator, height: int, width: int, pattern: str,
               probe: str = "curvilinear", motion: float = 1.0) -> Scene:
    """A lung scene of ``pattern`` (``PATTERNS``); ``motion`` scales pleural sliding (px)."""
    if pattern not in PATTERNS:
        raise ValueError(f"lung pattern {pattern!r} is not one of {PATTERNS}")
    h, w = height, width
    scene = new_scene(rng, probe, h, w, layout=lambda t: [], info={"pattern": pattern})
    lat_max = float(scene.grid.lateral.max())
    pd = h * rng.uniform(0.14, 0.3)  # pleura depth
    irregular = rng.uniform(1.0, 3.0) if pattern == "covid19" else rng.uniform(0.0, 0.6)
    thick = rng.uniform(4, 8) if pattern == "covid19" else rng.uniform(2, 3.5)
    wall = [Structure(band(-5, h * 0.025, rng, 0.5), Tissue(echo=2.4, specular=1.0), "layer"),
            Structure(band(pd * 0.35, pd * 0.75, rng, 2.0), Tissue(echo=0.5, streak=0.6), "muscle")]
    below = [Structure(Band(Curve(pd + thick), Curve(h * 2)), AIR, None, "beam")]
    a_amp = rng.uniform(0.8, 1.6) * (1.0 if pattern == "regular" else rng.uniform(0.0, 0.6))
    for k in (2, 3, 4, 5):
        if k * pd < h:
            below.append(Structure(Band(Curve(k * pd), Curve(k * pd + 2)),
                                   Tissue(echo=0.6 * a_amp ** k, specular=a_amp * 0.6 ** (k - 1), soft=1.2),
                                   None, "beam"))
    n_b = {"regular": int(rng.random() < 0.25), "covid19": int(rng.integers(2, 7)),
           "pneumonia": int(rng.integers(0, 3))}[pattern]
    centre = rng.uniform(0.2, 0.8) * lat_max  # covid B-lines come in patches
    for _ in range(n_b):
        x = centre + rng.normal(0, lat_max * 0.12) if pattern == "covid19" else rng.uniform(0.1, 0.9) * lat_max
        below.append(Structure(_vertical(x, rng.uniform(2.0, 5.0), pd + thick * 0.5, h * 2),
                               Tissue(echo=rng.uniform(1.5, 3.0), specular=0.4, texture=0.3, soft=0.9),
                               None, "beam"))
    consol = []
    if pattern == "pneumonia":
        cw, ch = lat_max * rng.uniform(0.12, 0.25), h * rng.uniform(0.12, 0.3)
        cx = rng.uniform(0.3, 0.7) * lat_max
        body = Blob(cx, pd + thick + ch * 0.7, cw, ch, 0.0, random_harmonics(rng, 1.2, 0.5))
        consol.append(Structure(body, Tissue(echo=rng.uniform(0.8, 1.6), texture=0.4, specular=0.8, soft=1.5),
                                "consolidation", "beam"))
        for _ in range(int(rng.integers(2, 7))):
            bx, by = cx + rng.normal(0, cw * 0.4), pd + thick + ch * rng.uniform(0.3, 1.1)
            consol.append(Structure(Blob(bx, by, rng.uniform(3, 8), rng.uniform(1, 2), float(rng.normal(0, 0.6))),
                                    Tissue(echo=6.0, specular=1.5, texture=0.0, soft=0.8), "consolidation", "beam"))
        if rng.random() < 0.3:
            consol.append(Structure(Blob(cx + cw, pd + thick + ch * 1.5, cw * 0.8, ch * 0.3), Tissue(echo=1e-4), "cyst", "beam"))
    elif pattern == "covid19":
        for _ in range(int(rng.integers(0, 4))):
            s = rng.uniform(3, 9)
            consol.append(Structure(Blob(centre + rng.normal(0, lat_max * 0.15), pd + thick + s * 0.6, s * 1.3, s,
                                         0.0, random_harmonics(rng, 1.0)),
                                    Tissue(echo=rng.uniform(0.6, 1.2), specular=0.5), "consolidation", "beam"))
    pleura = Structure(_pleura(pd, thick, irregular, rng), Tissue(echo=3.5, specular=1.8, soft=0.9), "pleura", "beam")
    ribs = []
    n_ribs = int(rng.choice([0, 1, 2], p=[0.3, 0.35, 0.35]))
    for side in rng.permutation([0.0, 1.0])[:n_ribs]:  # ribs at the edges: the "bat sign"
        rx = (side + rng.uniform(-0.05, 0.12) * (1 - 2 * side)) * w
        ribs.append(Structure(Blob(rx, pd * rng.uniform(0.8, 0.95), w * rng.uniform(0.04, 0.07), pd * 0.1),
                              RIB, "bone"))
    slide = smooth_path(rng, motion * (6.0 if pattern == "regular" else 1.5))
    breath = smooth_path(rng, motion * 1.0)
    structures = wall + below + consol + [pleura] + ribs

    def layout(t: float) -> list[Structure]:
        dy = breath(t)
        return [Structure(s.shape.moved(0, dy), s.tissue, s.role, s.coords) for s in structures]

    def material(t: float):
        sx, dy = slide(t), breath(t)
        return lambda x, y: (x - sx * (y > pd + dy), y - dy)

    scene.layout, scene.material = layout, material
    scene.background = Tissue(echo=0.7, texture=0.4)
    return scene
