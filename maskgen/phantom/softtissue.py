"""Small-parts anatomy on a linear probe: thyroid (transverse lobe) and breast, with lesions.

Benign and malignant lesions differ the way the sonographic criteria say (TI-RADS, BI-RADS),
but only in distribution, never deterministically: malignant lesions tend to be hypoechoic,
irregular or spiculated, taller than wide, with posterior shadowing and (thyroid)
microcalcifications; benign ones tend to be oval, circumscribed, wider than tall, iso- or
hyperechoic or cystic with posterior enhancement. Label-independent clutter (fat lobules,
pseudo-nodules, cysts, ribs, gain and depth changes) keeps the task from being trivial.
"""

from __future__ import annotations

import numpy as np

from maskgen.phantom.render import Structure, Tissue
from maskgen.phantom.scene import Scene, band, moved, new_scene, shifted, smooth_path
from maskgen.phantom.shapes import Blob, random_harmonics

FLUID = Tissue(echo=1e-4, atten=-0.012, texture=0.0, specular=0.5, soft=0.9)
CALC = Tissue(echo=10.0, block=0.7, specular=2.5, texture=0.0, soft=0.7)
MUSCLE = Tissue(echo=0.45, streak=0.55, texture=0.2)
FAT = Tissue(echo=0.3, texture=0.45)
SKIN = Tissue(echo=2.6, specular=1.2, texture=0.2, soft=1.0)


def lesion(rng: np.random.Generator, cx: float, cy: float, size: float, malignant: bool,
           organ: str) -> list[Structure]:
    """Structures of one lesion (role ``lesion``) of width about ``2 * size`` px at (cx, cy)."""
    if malignant:
        irregular = rng.uniform(0.6, 1.5)
        spic = rng.uniform(0.4, 1.0) if rng.random() < 0.7 else 0.0
        aspect = rng.uniform(0.85, 1.5) if rng.random() < 0.6 else rng.uniform(0.55, 0.95)
        echo = rng.uniform(0.06, 0.35)
        atten = rng.uniform(0.015, 0.05) if rng.random() < 0.55 else rng.uniform(-0.004, 0.01)
        soft = rng.uniform(1.4, 3.0)
    else:
        irregular = rng.uniform(0.0, 0.5)
        spic = rng.uniform(0.1, 0.35) if rng.random() < 0.1 else 0.0
        aspect = rng.uniform(0.45, 0.9) if rng.random() < 0.85 else rng.uniform(0.9, 1.2)
        echo = rng.uniform(0.2, 0.9) if organ == "breast" else rng.uniform(0.35, 2.2)
        atten = rng.uniform(-0.012, -0.002) if rng.random() < 0.4 else rng.uniform(0.0, 0.02)
        soft = rng.uniform(0.8, 1.4)
    a = size
    b = size * aspect
    body = Blob(cx, cy, a, b, float(rng.normal(0, 0.15)), random_harmonics(rng, irregular, spic))
    out = []
    if (malignant and organ == "breast" and rng.random() < 0.3) or (not malignant and rng.random() < 0.3):
        halo_echo = 2.2 if malignant else 0.15  # breast: echogenic halo; thyroid: hypoechoic rim
        out.append(Structure(body.moved(scale=1.12), Tissue(echo=halo_echo, soft=soft), None))
    cystic = (not malignant) and rng.random() < (0.35 if organ == "breast" else 0.25)
    tissue = FLUID if cystic else Tissue(echo=echo, atten=atten, texture=0.3, soft=soft,
                                         specular=0.6 if not malignant and rng.random() < 0.5 else 0.0)
    out.append(Structure(body, tissue, "lesion"))
    if not malignant and not cystic and rng.random() < 0.2:  # partly cystic nodule
        out.append(Structure(body.moved(dx=a * 0.2, scale=0.45), FLUID, "lesion"))
    calc_p = 0.5 if malignant and organ == "thyroid" else 0.12
    if rng.random() < calc_p:
        for _ in range(int(rng.integers(1, 5))):
            r = rng.uniform(0.8, 2.2) if malignant else rng.uniform(1.5, 3.5)
            ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.6)
            out.append(Structure(Blob(cx + rad * a * np.cos(ang), cy + rad * b * np.sin(ang), r, r),
                                 CALC, "lesion"))
    return out


def _clutter(rng, n, x0, x1, y0, y1, size, tissue_fn) -> list[Structure]:
    out = []
    for _ in range(n):
        s = size * rng.uniform(0.5, 1.2)
        out.append(Structure(Blob(rng.uniform(x0, x1), rng.uniform(y0, y1), s, s * rng.uniform(0.4, 0.8),
                                  float(rng.normal(0, 0.2)), random_harmonics(rng, 0.3)),
                             tissue_fn(), None))
    return out


def thyroid_scene(rng: np.random.Generator, height: int, width: int, nodule: str = "random",
                  frames_motion: float = 0.0) -> Scene:
    """Transverse thyroid lobe (linear probe): skin, strap muscles, gland, carotid, jugular,
    trachea with its shadow, optional nodule (``none``/``benign``/``malignant``/``random``).

    ``frames_motion`` (px) > 0 makes the probe slide for videos. ``info['malignant']`` is set.
    """
    h, w = height, width
    if nodule == "random":
        nodule = str(rng.choice(["benign", "malignant"]))
    side = 1 if rng.random() < 0.5 else -1
    gx, gy = w * (0.5 + side * rng.uniform(-0.08, 0.05)), h * rng.uniform(0.38, 0.52)
    ga, gb = w * rng.uniform(0.24, 0.34), h * rng.uniform(0.14, 0.22)
    gland = Blob(gx, gy, ga, gb, float(rng.normal(0, 0.08)), random_harmonics(rng, 0.5))
    skin = rng.uniform(0.02, 0.04) * h
    strap = gy - gb - rng.uniform(0.02, 0.06) * h
    carotid_r = w * rng.uniform(0.05, 0.08)
    cx_car = gx + side * (ga + carotid_r * 0.9)
    base = [
        Structure(band(-5, skin, rng, 1.0), SKIN, "layer"),
        Structure(band(skin + 0.03 * h, strap, rng, 2.5), MUSCLE, "muscle"),
        Structure(band(h * 0.86, h + 9, rng, 4.0), MUSCLE, "muscle"),
        Structure(gland, Tissue(echo=rng.uniform(2.0, 3.5), texture=0.22, soft=1.5), "organ"),
    ]
    base += _clutter(rng, int(rng.integers(0, 3)), gx - ga * 0.6, gx + ga * 0.6, gy - gb * 0.4,
                     gy + gb * 0.4, ga * 0.12, lambda: Tissue(echo=rng.uniform(0.6, 1.0), soft=2.0))
    if rng.random() < 0.5:
        base.append(Structure(Blob(gx + rng.uniform(-0.5, 0.5) * ga, gy + rng.uniform(-0.3, 0.3) * gb,
                                   ga * 0.06, ga * 0.05), FLUID, "cyst"))
    trachea = Blob(gx - side * (ga + w * 0.08), gy + gb * 0.1, w * 0.12, h * 0.1)
    base.append(Structure(trachea, Tissue(echo=0.6, block=0.08, specular=2.0, soft=1.0), "bone"))
    if nodule != "none":
        size = min(ga, gb) * rng.uniform(0.35, 0.8)
        nx = gx + rng.uniform(-0.45, 0.45) * (ga - size)
        ny = gy + rng.uniform(-0.25, 0.25) * (gb - size * 0.6)
        base += lesion(rng, nx, ny, size, nodule == "malignant", "thyroid")
    jug = Blob(cx_car + side * carotid_r * 1.6, gy - gb * 0.6, carotid_r * 1.2, carotid_r * 0.5)
    vessels = [(Blob(cx_car, gy, carotid_r, carotid_r), 0.08), (jug, 0.25)]
    path_x, path_y = smooth_path(rng, frames_motion), smooth_path(rng, frames_motion * 0.2)
    beats = rng.uniform(2, 4)

    def layout(t: float) -> list[Structure]:
        pulse = 0.5 - 0.5 * np.cos(2 * np.pi * beats * t)
        vs = [Structure(b.moved(scale=1 + amp * pulse), FLUID, "vessel") for b, amp in vessels]
        return moved(base[:4] + vs + base[4:], path_x(t), path_y(t))

    return new_scene(rng, "linear", h, w, layout,
                     material=lambda t: shifted(path_x(t), path_y(t)) if frames_motion else None,
                     background=Tissue(echo=0.6, texture=0.35),
                     info={"malignant": nodule == "malignant", "nodule": nodule})


def breast_scene(rng: np.random.Generator, height: int, width: int, kind: str) -> Scene:
    """Breast on a linear probe: skin, fat with lobules, fibroglandular layer, pectoralis, rib;
    ``kind`` ``normal`` (no lesion), ``benign`` or ``malignant``."""
    if kind not in ("normal", "benign", "malignant"):
        raise ValueError(f"breast scene kind {kind!r} is not normal/benign/malignant")
    h, w = height, width
    skin = rng.uniform(0.02, 0.045) * h
    fat_bottom = h * rng.uniform(0.18, 0.35)
    gland_bottom = fat_bottom + h * rng.uniform(0.25, 0.4)
    pect_top = gland_bottom + h * rng.uniform(0.04, 0.12)
    st = [
        Structure(band(-5, skin, rng, 1.0), SKIN, "layer"),
        Structure(band(skin, fat_bottom, rng, 6.0), FAT, None),
        Structure(band(fat_bottom, gland_bottom, rng, 10.0),
                  Tissue(echo=rng.uniform(1.3, 2.2), streak=0.6, texture=0.45, soft=2.5), "organ"),
        Structure(band(pect_top, pect_top + h * rng.uniform(0.08, 0.15), rng, 3.0),
                  MUSCLE, "muscle"),
    ]
    st += _clutter(rng, int(rng.integers(1, 5)), 0, w, skin + 4, gland_bottom, w * 0.07,
                   lambda: Tissue(echo=rng.uniform(0.2, 0.4), texture=0.4, soft=2.0))
    if rng.random() < 0.3:  # a benign-looking simple cyst can sit in any breast
        r = w * rng.uniform(0.02, 0.05)
        st.append(Structure(Blob(rng.uniform(0.1, 0.9) * w, rng.uniform(fat_bottom, gland_bottom), r * 1.4, r),
                            FLUID, "cyst"))
    if rng.random() < 0.5:
        rib_y = pect_top + h * rng.uniform(0.14, 0.22)
        st.append(Structure(Blob(rng.uniform(0.2, 0.8) * w, rib_y, w * rng.uniform(0.1, 0.16), h * 0.04),
                            Tissue(echo=3.0, block=0.5, specular=2.0, soft=1.0), "bone"))
    if kind != "normal":
        size = w * rng.uniform(0.08, 0.2)
        cy = rng.uniform(fat_bottom, gland_bottom)
        st += lesion(rng, rng.uniform(0.3, 0.7) * w, cy, size, kind == "malignant", "breast")
    return new_scene(rng, "linear", h, w, lambda t: st, background=Tissue(echo=0.35, texture=0.4),
                     info={"kind": kind})
