"""A scene: probe, tissue fields, acquisition settings and anatomy that may move over time.

Anatomy modules (thyroid, breast, cardiac, lung, abdomen) build ``Scene`` objects; writers ask
a scene for frames at times t (video) or t = 0 (still image). ``Scene.frame(t)`` returns the
B-mode image and the structures present at t, from which any dataset's label map follows
(``render_mask`` with that dataset's role -> label table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from maskgen.phantom.fields import TissueFields
from maskgen.phantom.geometry import BeamGrid, make_probe
from maskgen.phantom.render import Imaging, Structure, Tissue, render_frame, render_mask
from maskgen.phantom.shapes import Band, Curve

# every anatomy class the phantom draws, with a fixed id (the preview's colours, the benchmark)
ROLES = ("organ", "lesion", "cyst", "vessel", "layer", "muscle", "calcification", "bone",
         "lv", "myocardium", "la", "chamber", "pleura", "consolidation")
ROLE_IDS = {name: i + 1 for i, name in enumerate(ROLES)}

Layout = Callable[[float], list[Structure]]
Material = Callable[[float], Callable | None]


@dataclass
class Scene:
    """One still image (use t = 0) or one video (t in [0, 1) over the clip).

    Attributes:
        grid: beam grid of the probe.
        fields: scatterers/textures fixed in the tissue.
        imaging: acquisition settings.
        layout: t -> structures at time t, in painting order.
        material: t -> mapping of display to material coordinates at t (None: static tissue).
        background: tissue filling the field of view under the structures.
        info: facts about the scene a writer may need (class, view, cycle, ...).
    """

    grid: BeamGrid
    fields: TissueFields
    imaging: Imaging
    layout: Layout
    material: Material = field(default=lambda t: None)
    background: Tissue = field(default_factory=Tissue)
    info: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.grid.probe.height, self.grid.probe.width

    def frame(self, t: float = 0.0) -> tuple[np.ndarray, list[Structure]]:
        """(H, W) uint8 B-mode frame at time t and the structures drawn in it."""
        structures = self.layout(t)
        image = render_frame(structures, self.grid, self.fields, self.imaging,
                             self.background, self.material(t))
        return image, structures

    def mask(self, structures: list[Structure], label_of: dict[str, int]) -> np.ndarray:
        """(H, W) uint8 label map of ``structures`` with ``label_of`` (role -> label)."""
        return render_mask(structures, self.grid, label_of)

    def anatomy(self, structures: list[Structure]) -> np.ndarray:
        """(H, W) uint8 map of every anatomy class (``ROLE_IDS``), for previews and benchmarks."""
        return render_mask(structures, self.grid, ROLE_IDS)


def new_scene(rng: np.random.Generator, kind: str, height: int, width: int, layout: Layout,
              material: Material | None = None, background: Tissue | None = None,
              info: dict | None = None, margin: int = 48) -> Scene:
    """A ``Scene`` with a random probe of ``kind`` and random acquisition settings."""
    grid = BeamGrid(make_probe(kind, height, width, rng))
    fields = TissueFields(rng, height, width, margin=margin)
    imaging = Imaging.random(rng, scale=max(height, width) / 256.0)
    return Scene(grid, fields, imaging, layout, material or (lambda t: None),
                 background or Tissue(), info or {})


def shifted(dx: float, dy: float) -> Callable:
    """Material mapping of tissue moved by (dx, dy) px: display point p shows material p - d."""
    return lambda x, y: (x - dx, y - dy)


def smooth_path(rng: np.random.Generator, amplitude: float) -> Callable[[float], float]:
    """A smooth random 1-D path over t in [0, 1]: two sinusoids of random phase, zero at t=0."""
    f1, f2 = rng.uniform(0.4, 1.2), rng.uniform(1.2, 2.5)
    p1, p2 = rng.uniform(0, 2 * np.pi, size=2)
    a1, a2 = amplitude * rng.uniform(0.5, 1.0), amplitude * rng.uniform(0.0, 0.4)

    def path(t: float) -> float:
        return float(a1 * (np.sin(2 * np.pi * f1 * t + p1) - np.sin(p1))
                     + a2 * (np.sin(2 * np.pi * f2 * t + p2) - np.sin(p2)))

    return path


def moved(structures: list[Structure], dx: float, dy: float) -> list[Structure]:
    """Display-coordinate structures translated by (dx, dy); beam-coordinate ones unchanged."""
    return [st if st.coords == "beam" else
            Structure(st.shape.moved(dx, dy), st.tissue, st.role, st.coords)
            for st in structures]


def band(top: float, bottom: float, rng: np.random.Generator | None = None,
         wave: float = 0.0, period: tuple[float, float] = (60.0, 200.0),
         x_range: tuple[float, float] = (-1e9, 1e9)) -> Band:
    """A layer between depths ``top`` and ``bottom`` (px) with random waviness ``wave`` px."""
    def curve(base):
        if rng is None or wave <= 0:
            return Curve(base)
        return Curve(base, float(rng.normal(0, 0.03)),
                     ((float(wave * rng.uniform(0.5, 1)), float(rng.uniform(*period)),
                       float(rng.uniform(0, 6.3))),))
    return Band(curve(top), curve(bottom), x_range)
