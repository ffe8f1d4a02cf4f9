"""B-mode image formation in beam space, and the exact ground-truth masks.

For one frame:
 1. paint the tissue property maps (echogenicity, excess attenuation, shadowing, specular
    reflectivity, texture) from the scene's structures, with soft edges;
 2. transmission = exp(-running sum along depth of excess attenuation and blocking):
    shadows beneath calcifications, bone and air; posterior enhancement beneath fluid, which
    attenuates less than the tissue the time-gain compensation assumes;
 3. complex scatterer field x sqrt(echogenicity) x transmission, plus a coherent (constant
    phase) specular component at strong boundaries;
 4. point-spread function: Gaussian axial x Gaussian lateral whose width (in display pixels)
    grows with depth, applied with FFTs per axis (the lateral one per depth row);
 5. envelope, electronic noise amplified with depth by the TGC, gain / TGC error,
    log compression to a dynamic range, scan conversion to the display (black outside).

Masks are the set ``field < 0`` of the labelled structures, painted in scene order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from maskgen.phantom.fields import TissueFields
from maskgen.phantom.geometry import BeamGrid
from maskgen.phantom.shapes import Band, Blob


@dataclass(frozen=True)
class Tissue:
    """Acoustic properties of a structure (tissue = echo 1, atten 0, texture 0.35).

    Attributes:
        echo: backscatter intensity relative to soft tissue (fluid ~0.005, fat ~0.3, fibrous ~2).
        atten: attenuation in excess of what the TGC assumes, nepers per px (fluid < 0).
        block: extra loss per px inside (calcification, bone, air: strong shadowing).
        specular: amplitude of the coherent boundary echo (0 = none).
        texture: strength of the isotropic echo texture (std of log-echo).
        streak: strength of the fibrillar (horizontal) texture.
        soft: edge softness, px.
    """

    echo: float = 1.0
    atten: float = 0.0
    block: float = 0.0
    specular: float = 0.0
    texture: float = 0.35
    streak: float = 0.0
    soft: float = 1.2


@dataclass(frozen=True)
class Structure:
    """A shape with its tissue; ``role`` names the anatomy class (None: not in any mask).

    ``coords="beam"`` evaluates the shape at (lateral, depth) beam coordinates, e.g. the pleura
    and A-lines that follow the probe face, or B-lines that follow a scan line.
    """

    shape: Blob | Band
    tissue: Tissue
    role: str | None = None
    coords: str = "display"


@dataclass(frozen=True)
class Imaging:
    """System settings (nuisance variables of an acquisition).

    Attributes:
        axial_sigma: axial PSF width, px.
        lateral_sigma: (near, far) lateral PSF width, px at the top and bottom of the image.
        gain_db: overall gain.
        tgc_db: (slope, curvature) of the TGC error over the depth, dB.
        dynamic_range_db: displayed dynamic range.
        noise_db: electronic noise level relative to tissue echo, dB (at the top; TGC raises it).
        noise_growth_db: how much the TGC amplifies the noise from top to bottom, dB.
    """

    axial_sigma: float = 0.9
    lateral_sigma: tuple[float, float] = (1.2, 2.8)
    gain_db: float = 0.0
    tgc_db: tuple[float, float] = (0.0, 0.0)
    dynamic_range_db: float = 55.0
    noise_db: float = -48.0
    noise_growth_db: float = 20.0

    @staticmethod
    def random(rng: np.random.Generator, scale: float = 1.0) -> Imaging:
        """Random acquisition settings; ``scale`` = display px per 256 px (PSF scales with it)."""
        return Imaging(
            axial_sigma=float(rng.uniform(0.9, 1.4) * scale),
            lateral_sigma=(float(rng.uniform(1.3, 2.0) * scale), float(rng.uniform(2.8, 4.2) * scale)),
            gain_db=float(rng.normal(0, 3.0)),
            tgc_db=(float(rng.normal(0, 3.0)), float(rng.normal(0, 2.0))),
            dynamic_range_db=float(rng.uniform(48, 62)),
            noise_db=float(rng.uniform(-52, -40)),
            noise_growth_db=float(rng.uniform(12, 26)),
        )


def _window(shape, grid: BeamGrid, coords: str, margin: float) -> tuple[slice, slice]:
    """Rows and columns of the beam grid that cover the shape's bounding box (a superset)."""
    x0, x1, y0, y1 = shape.bbox(margin)
    d, n = grid.shape
    if coords == "beam" or grid.probe.kind == "linear":
        rows_1d = grid.depth[:, 0] if coords == "beam" else grid.y[:, 0]
        cols_1d = grid.lateral[0, :] if coords == "beam" else grid.x[0, :]
        r = np.searchsorted(rows_1d, [y0, y1])
        c = np.searchsorted(cols_1d, [x0, x1])
        return slice(max(r[0] - 1, 0), min(r[1] + 1, d)), slice(max(c[0] - 1, 0), min(c[1] + 1, n))
    ax, ay = grid.apex
    if y1 <= ay:
        return slice(0, 0), slice(0, 0)
    y0 = max(y0, ay + 1e-3)
    px, py = min(max(ax, x0), x1), min(max(ay, y0), y1)
    corners_x, corners_y = np.array([x0, x1, x0, x1]) - ax, np.array([y0, y0, y1, y1]) - ay
    r_lo, r_hi = np.hypot(px - ax, py - ay), np.hypot(corners_x, corners_y).max()
    angles = np.arctan2(corners_x, corners_y)
    r = np.searchsorted(grid.r, [r_lo, r_hi])
    c = np.searchsorted(grid.theta, [angles.min(), angles.max()])
    return slice(max(r[0] - 1, 0), min(r[1] + 1, d)), slice(max(c[0] - 1, 0), min(c[1] + 1, n))


def _select(shape, cx: np.ndarray, cy: np.ndarray, margin: float) -> np.ndarray:
    """Flat indices of the points inside the shape's bounding box."""
    x0, x1, y0, y1 = shape.bbox(margin)
    return np.flatnonzero((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1))


BLENDED = ("echo", "atten", "texture", "streak")


def _blend_value(tissue: Tissue, key: str) -> float:
    value = getattr(tissue, key)
    return float(np.log(max(value, 1e-6))) if key == "echo" else value


def paint_properties(structures, grid: BeamGrid, background: Tissue) -> dict[str, np.ndarray]:
    """(D, L) float32 property maps ``echo, atten, block, specular, texture, streak``.

    Each structure blends its tissue in with weight sigmoid(-field / soft), inside the beam
    window that covers its bounding box (views, no gathers).
    """
    shape = grid.shape
    # echogenicity blends in the log domain: a soft edge must not leak -25 dB of bright tissue
    # into an anechoic cavity (fluid is 40 dB below tissue)
    blended = np.empty((len(BLENDED), *shape), dtype=np.float32)
    for i, k in enumerate(BLENDED):
        blended[i] = _blend_value(background, k)
    block = np.full(shape, background.block, dtype=np.float32)
    specular = np.zeros(shape, dtype=np.float32)
    coords = {"display": (grid.x, grid.y), "beam": (grid.lateral, grid.depth)}
    for st in structures:
        t = st.tissue
        rs, cs = _window(st.shape, grid, st.coords, 4 * t.soft + 3)
        if rs.stop <= rs.start or cs.stop <= cs.start:
            continue
        cx, cy = coords[st.coords]
        f = st.shape.field(cx[rs, cs], cy[rs, cs])
        w = 0.5 * (1.0 - np.tanh(f * (0.5 / t.soft)))
        view = blended[:, rs, cs]
        values = np.array([_blend_value(t, k) for k in BLENDED], dtype=np.float32)[:, None, None]
        view += (values - view) * w
        if t.block:
            block[rs, cs] += t.block * w
        spec = specular[rs, cs]
        spec *= 1.0 - w  # a covering structure hides the boundaries beneath it
        if t.specular:
            edge = t.specular * np.exp(-(f * (1.0 / max(t.soft, 0.8))) ** 2)
            np.maximum(spec, edge, out=spec)
    maps = {k: blended[i] for i, k in enumerate(BLENDED)}
    maps["echo"] = np.exp(maps["echo"])
    maps["block"], maps["specular"] = block, specular
    return maps


@functools.lru_cache(maxsize=16)
def _psf_transfer(grid: BeamGrid, imaging: Imaging):
    """Axial (pad_d,) and per-depth lateral (D, pad_l) transfer functions, unit power gain."""
    d, n = grid.shape
    pad_d, pad_l = sfft.next_fast_len(d + 8), sfft.next_fast_len(n + 12)
    fz = sfft.fftfreq(pad_d).astype(np.float32)
    hz = np.exp(-2 * (np.pi * imaging.axial_sigma * fz) ** 2).astype(np.float32)
    near, far = imaging.lateral_sigma
    sigma_px = near + (far - near) * np.linspace(0.0, 1.0, d, dtype=np.float32)
    sigma_lines = np.clip(sigma_px / grid.line_spacing, 0.3, n / 6.0).astype(np.float32)
    fx = sfft.fftfreq(pad_l).astype(np.float32)
    hx = np.exp(-2 * (np.pi * sigma_lines[:, None] * fx[None, :]) ** 2)
    # white scatterers keep unit power (Parseval: sum of squared taps = mean |H|^2)
    norm = 1.0 / np.sqrt(np.mean(hz ** 2) * np.mean(hx ** 2, axis=1))
    return hz[:, None], (hx * norm[:, None]).astype(np.float32)


def _psf_filter(field: np.ndarray, grid: BeamGrid, imaging: Imaging) -> np.ndarray:
    """Gaussian axial x depth-dependent Gaussian lateral PSF, via FFTs; (D, L) complex64."""
    d, n = field.shape
    hz, hx = _psf_transfer(grid, imaging)
    spec = sfft.fft(field, n=hz.shape[0], axis=0, workers=1)
    spec *= hz
    field = sfft.ifft(spec, axis=0, workers=1)[:d]
    spec = sfft.fft(field, n=hx.shape[1], axis=1, workers=1)
    spec *= hx
    return sfft.ifft(spec, axis=1, workers=1)[:, :n].astype(np.complex64, copy=False)


def beam_envelope(maps: dict[str, np.ndarray], scatter: np.ndarray, blob: np.ndarray,
                  streak: np.ndarray, grid: BeamGrid, imaging: Imaging) -> np.ndarray:
    """(D, L) float32 envelope before TGC error, noise and compression (tissue: E|e|^2 ~ 1)."""
    echo = maps["echo"] * np.exp(maps["texture"] * blob + maps["streak"] * streak)
    loss = maps["atten"] + maps["block"]
    log_t = -np.cumsum(loss, axis=0)
    trans = np.exp(np.minimum(log_t, 3.0)).astype(np.float32)
    field = (np.sqrt(echo) * trans) * scatter + (maps["specular"] * trans).astype(np.complex64)
    return np.abs(_psf_filter(field.astype(np.complex64), grid, imaging))


def display(envelope: np.ndarray, grid: BeamGrid, imaging: Imaging,
            noise: np.ndarray | None = None) -> np.ndarray:
    """Envelope (D, L) -> (H, W) uint8 B-mode display: noise, gain/TGC, log compression."""
    d = envelope.shape[0]
    z = np.linspace(0.0, 1.0, d, dtype=np.float32)[:, None]
    if noise is not None:
        level = 10 ** ((imaging.noise_db + imaging.noise_growth_db * z) / 20)
        envelope = np.abs(envelope + level * noise)
    slope, curve = imaging.tgc_db
    gain_db = imaging.gain_db + slope * (z - 0.5) + curve * (4 * (z - 0.5) ** 2 - 0.33)
    db = 20 * np.log10(envelope + 1e-7) + gain_db
    dr = imaging.dynamic_range_db
    level = np.clip((db + 0.6 * dr) / dr, 0.0, 1.0)
    img = grid.scan_convert(level)
    return np.rint(img * 255).astype(np.uint8)


def render_frame(structures, grid: BeamGrid, fields: TissueFields, imaging: Imaging,
                 background: Tissue = Tissue(), material=None) -> np.ndarray:
    """Render one (H, W) uint8 frame.

    Args:
        structures: ``Structure`` list in painting order (later ones cover earlier ones).
        grid: the probe's beam grid.
        fields: scatterers and textures, sampled at material coordinates.
        imaging: system settings.
        material: optional callable (x, y) -> (xm, ym) mapping beam samples' display
            coordinates to material coordinates (motion, deformation); identity if None.
    """
    x, y = grid.x, grid.y
    xm, ym = (x, y) if material is None else material(x, y)
    scatter, blob, streak = fields.sample(xm, ym)
    maps = paint_properties(structures, grid, background)
    env = beam_envelope(maps, scatter, blob, streak, grid, imaging)
    # electronic noise: fixed-pattern-free, independent of the scatterers (shifted field)
    noise = scatter[::-1, ::-1]
    return display(env, grid, imaging, noise)


def render_mask(structures, grid: BeamGrid, label_of: dict[str, int]) -> np.ndarray:
    """(H, W) uint8 label map: ``label_of[role]`` where a structure's field < 0, in order.

    A structure with another named role covers what lies beneath it (label 0: e.g. the LV
    cavity over the myocardium when only the wall is labelled); structures with role None
    (texture, clutter, halos, valves) leave the map unchanged. Outside the field of view: 0.
    """
    h, w = grid.probe.height, grid.probe.width
    dc = grid.display_coords
    coords = {"display": (dc["x"], dc["y"]), "beam": (dc["lateral"], dc["depth"])}
    inside = np.flatnonzero(grid.fov.ravel())
    labels = np.zeros(inside.size, dtype=np.uint8)
    for st in structures:
        if st.role is None:
            continue
        cx, cy = coords[st.coords]
        sel = _select(st.shape, cx, cy, 1.0)
        if sel.size == 0:
            continue
        hit = sel[st.shape.field(cx[sel], cy[sel]) < 0]
        labels[hit] = label_of.get(st.role, 0)
    out = np.zeros(h * w, dtype=np.uint8)
    out[inside] = labels
    return out.reshape(h, w)
