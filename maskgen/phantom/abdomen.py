"""Point-of-care views for the Butterfly-like video set: Morison's pouch, bladder, IVC, carotid.

Each is a short clip with smooth probe motion (and breathing or pulsation where relevant).
"""

from __future__ import annotations

import numpy as np

from maskgen.phantom.render import Structure, Tissue
from maskgen.phantom.scene import Scene, band, moved, new_scene, shifted, smooth_path
from maskgen.phantom.shapes import Band, Blob, Curve, random_harmonics
from maskgen.phantom.softtissue import FLUID, MUSCLE, SKIN

LIVER = Tissue(echo=1.1, texture=0.3, soft=1.5)
ABDOMEN_VIEWS = ("morisons_pouch", "bladder", "ivc", "carotid")


def _morison(rng, h, w) -> list[Structure]:
    liver = Blob(w * 0.4, h * 0.35, w * 0.55, h * 0.35, 0.3, random_harmonics(rng, 0.4))
    kidney = Blob(w * 0.6, h * 0.72, w * 0.24, h * 0.12, -0.35, random_harmonics(rng, 0.3))
    st = [Structure(band(-5, h * 0.03, rng, 1.0), SKIN, "layer"),
          Structure(band(h * 0.05, h * 0.1, rng, 2.0), MUSCLE, "muscle"),
          Structure(liver, LIVER, "organ"),
          Structure(Blob(w * 0.45, h * 0.4, w * 0.03, w * 0.03), FLUID, "vessel"),
          Structure(kidney.moved(scale=1.06), Tissue(echo=2.2, specular=1.0), "organ"),
          Structure(kidney, Tissue(echo=0.55, texture=0.3), "organ"),
          Structure(kidney.moved(scale=0.45), Tissue(echo=2.8, texture=0.5), "organ")]
    if rng.random() < 0.4:  # free fluid in the hepatorenal space
        st.insert(4, Structure(kidney.moved(-w * 0.05, -h * 0.12, 1.05, 0.35), FLUID, "cyst"))
    return st


def _bladder(rng, h, w) -> list[Structure]:
    r = w * rng.uniform(0.22, 0.32)
    bladder = Blob(w * 0.5, h * 0.4, r, r * rng.uniform(0.6, 0.9), 0.0, ((4, 0.06, 0.0),))
    return [Structure(band(-5, h * 0.03, rng, 1.0), SKIN, "layer"),
            Structure(band(h * 0.05, h * 0.12, rng, 2.0), MUSCLE, "muscle"),
            Structure(bladder, Tissue(echo=1e-4, atten=-0.015, texture=0, specular=1.0), "cyst"),
            Structure(Blob(w * 0.5, h * 0.4 + r * 1.3, w * 0.16, h * 0.1), LIVER, "organ")]


def _ivc(rng, h, w) -> list[Structure]:
    liver = Blob(w * 0.5, h * 0.4, w * 0.7, h * 0.4, 0.1, random_harmonics(rng, 0.3))
    return [Structure(band(-5, h * 0.03, rng, 1.0), SKIN, "layer"),
            Structure(liver, LIVER, "organ"),
            Structure(band(h * 0.72, h * 0.76, rng, 6.0), Tissue(echo=3.0, specular=1.5), "layer")]


def _carotid(rng, h, w) -> list[Structure]:
    return [Structure(band(-5, h * 0.04, rng, 1.0), SKIN, "layer"),
            Structure(band(h * 0.08, h * 0.3, rng, 3.0), MUSCLE, "muscle"),
            Structure(band(h * 0.8, h + 9, rng, 3.0), MUSCLE, "muscle")]


def abdomen_scene(rng: np.random.Generator, height: int, width: int, view: str,
                  motion: float = 6.0) -> Scene:
    """A clip of ``view`` (``ABDOMEN_VIEWS``); t in [0, 1) over the clip."""
    if view not in ABDOMEN_VIEWS:
        raise ValueError(f"view {view!r} is not one of {ABDOMEN_VIEWS}")
    h, w = height, width
    base = {"morisons_pouch": _morison, "bladder": _bladder, "ivc": _ivc, "carotid": _carotid}[view](rng, h, w)
    kind = "linear" if view == "carotid" else "curvilinear"
    px, py = smooth_path(rng, motion), smooth_path(rng, motion * 0.4)
    pulse_rate = rng.uniform(2, 5)
    vessel_y = h * (rng.uniform(0.45, 0.6) if view == "carotid" else rng.uniform(0.5, 0.6))
    vessel_r = h * (rng.uniform(0.06, 0.09) if view == "carotid" else rng.uniform(0.05, 0.08))

    def layout(t: float) -> list[Structure]:
        st = list(base)
        if view in ("ivc", "carotid"):
            amp = 0.12 if view == "carotid" else 0.3  # pulsation / respiratory collapse
            r = vessel_r * (1 + amp * (0.5 - 0.5 * np.cos(2 * np.pi * pulse_rate * t)))
            tube = Band(Curve(vessel_y - r, 0.05, ((2.0, 180.0, 1.0),)),
                        Curve(vessel_y + r, 0.05, ((2.0, 180.0, 1.0),)))
            st.append(Structure(tube, Tissue(echo=1e-4, atten=-0.01, texture=0, specular=1.2, soft=1.0),
                                "vessel"))
        return moved(st, px(t), py(t))

    return new_scene(rng, kind, h, w, layout, lambda t: shifted(px(t), py(t)),
                     background=Tissue(echo=0.7, texture=0.4), info={"view": view})
