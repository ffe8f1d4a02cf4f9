"""Echocardiography on a phased-array sector: apical 4- and 2-chamber views and a PLAX view.

The cardiac cycle drives the anatomy: contraction c(t) = 0 at end-diastole (ED) and 1 at
end-systole (ES). The LV cavity shrinks (more across than along its axis), the wall thickens
(outer outline shrinks less), the atria fill, the mitral leaflets open in diastole, and the
scatterers of the myocardium follow a radial contraction around the LV centre.
"""

from __future__ import annotations

import numpy as np

from maskgen.phantom.render import Structure, Tissue
from maskgen.phantom.scene import Scene, new_scene, smooth_path
from maskgen.phantom.shapes import Band, Blob, Curve, random_harmonics

BLOOD = Tissue(echo=3e-4, atten=-0.006, texture=0.5, soft=1.6)
MYO = Tissue(echo=1.3, texture=0.4, streak=0.2, soft=1.4)
PERICARDIUM = Tissue(echo=2.5, specular=1.2, texture=0.3, soft=2.0)
NEAR_FIELD = Tissue(echo=0.35, texture=0.6, soft=6.0)
VALVE = Tissue(echo=3.5, specular=1.0, texture=0.0, soft=0.8)


def contraction(t: float, cycles: float, phase: float = 0.0) -> float:
    """c in [0, 1]: 0 at end-diastole (cycle phase 0), 1 at end-systole (phase 1/2)."""
    u = (cycles * t + phase) % 1.0
    return float(0.5 - 0.5 * np.cos(2 * np.pi * u))


def _chamber(cx, cy, a, b, angle, rng, irregular=0.25) -> Blob:
    return Blob(cx, cy, a, b, angle, random_harmonics(rng, irregular))


def heart_scene(rng: np.random.Generator, height: int, width: int, view: str = "4ch",
                cycles: float = 1.0, phase: float = 0.0) -> Scene:
    """A beating heart; ``view`` in ``4ch``, ``2ch``, ``plax``. t in [0, 1) spans ``cycles``.

    Roles: ``lv`` (LV cavity), ``myocardium`` (LV wall), ``la`` (left atrium), ``chamber``
    (right heart / aorta), ``layer`` (pericardium), ``cyst``-free. ``info['ed_es']`` gives the
    times of the first ED and ES.
    """
    if view not in ("4ch", "2ch", "plax"):
        raise ValueError(f"cardiac view {view!r} is not one of 4ch, 2ch, plax")
    h, w = height, width
    tilt = float(rng.normal(0, 0.12))
    if view == "plax":
        lv = (w * 0.5, h * 0.52, h * 0.34, h * 0.11, 0.25 + tilt)
        la = (w * 0.68, h * 0.8, h * 0.1, h * 0.09, 0.0)
        others = [(w * 0.45, h * 0.24, h * 0.3, h * 0.07, 0.2 + tilt), (w * 0.72, h * 0.56, h * 0.07, h * 0.06, 0)]
    else:
        lv_x = w * (0.58 if view == "4ch" else 0.5)
        lv = (lv_x, h * 0.4, w * 0.11, h * 0.26, -0.12 + tilt)
        la = (lv_x + w * 0.03, h * 0.8, w * 0.1, h * 0.1, 0.0)
        others = [(w * 0.36, h * 0.42, w * 0.08, h * 0.22, 0.2 + tilt),
                  (w * 0.33, h * 0.8, w * 0.09, h * 0.1, 0.0)] if view == "4ch" else []
    jitter = lambda v: tuple(x * rng.uniform(0.93, 1.07) if i < 4 else x for i, x in enumerate(v))  # noqa: E731
    lv, la = jitter(lv), jitter(la)
    others = [jitter(o) for o in others]
    wall = rng.uniform(0.035, 0.055) * h
    lv_blob = _chamber(*lv, rng)
    la_blob = _chamber(*la, rng, 0.15)
    other_blobs = [_chamber(*o, rng) for o in others]
    peri = Blob(w * 0.5, h * 0.55, w * 0.42, h * 0.5, tilt, random_harmonics(rng, 0.3))
    myo_echo = rng.uniform(0.9, 1.8)
    sway = smooth_path(rng, 2.0)
    ed_t = ((-phase) % 1.0) / cycles
    clutter_depth = h * rng.uniform(0.05, 0.12)
    # blood is not quite anechoic: its echo ("smoke") varies with the machine and the patient
    blood = Tissue(echo=float(10 ** rng.uniform(-3.6, -2.4)), atten=BLOOD.atten,
                   texture=BLOOD.texture, soft=BLOOD.soft)

    def layout(t: float) -> list[Structure]:
        c = contraction(t, cycles, phase)
        dx = sway(t)
        cav = lv_blob.moved(dx, 0, 1 - 0.24 * c, 1 - 0.12 * c)
        outer = cav.with_axes(cav.a + wall * (1 + 0.5 * c), cav.b + wall * (1 + 0.3 * c))
        st = [Structure(peri.moved(dx), PERICARDIUM, "layer"),
              Structure(peri.moved(dx, 0, 0.93), Tissue(echo=0.7, texture=0.4), "muscle"),
              Structure(outer, Tissue(echo=myo_echo, texture=0.4, streak=0.2, soft=1.4), "myocardium")]
        for ob in other_blobs:
            st.append(Structure(ob.moved(dx, 0, 1 + wall / ob.a * 0.6), Tissue(echo=myo_echo * 0.9), None))
            st.append(Structure(ob.moved(dx, 0, 1 - 0.15 * c), blood, "chamber"))
        st.append(Structure(cav, blood, "lv"))
        st.append(Structure(la_blob.moved(dx, 0, 1 + 0.12 * c), blood, "la"))
        # near-field clutter and reverberation haze below the transducer (over the apex)
        st.append(Structure(Band(Curve(-10.0), Curve(clutter_depth)), NEAR_FIELD, None, "beam"))
        # mitral leaflets at the LV base: open (apart) in diastole, closed in systole
        base_y = cav.cy + cav.b * 0.95
        gap = cav.a * (0.15 + 0.5 * (1 - c))
        for side in (-1, 1):
            st.append(Structure(Blob(cav.cx + side * gap, base_y, cav.a * 0.07, cav.b * 0.12),
                                VALVE, None))
        return st

    def material(t: float):
        c = contraction(t, cycles, phase)
        cx, cy = lv_blob.cx + sway(t), lv_blob.cy
        radius2 = (2.0 * max(lv_blob.a, lv_blob.b)) ** 2

        def to_material(x, y):
            dx, dy = x - cx, y - cy
            s = 1.0 + 0.18 * c * np.exp(-(dx * dx + dy * dy) / radius2)
            return cx + dx * s, cy + dy * s

        return to_material

    es_t = ed_t + 0.5 / cycles
    return new_scene(rng, "phased", h, w, layout, material,
                     background=Tissue(echo=0.5, texture=0.5),
                     info={"view": view, "ed_es": (ed_t, es_t), "cycles": cycles})
