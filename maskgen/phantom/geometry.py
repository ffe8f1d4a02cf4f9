"""Probe geometry: the beam grid (depth x scan line) and scan conversion to the display.

Echoes are formed in beam space, an (D, L) grid of D depth samples on each of L scan lines,
where the point-spread function is separable (axial along a line, lateral across lines) and
shadows are running sums along depth. ``BeamGrid.scan_convert`` then maps the beam image to
the (H, W) display with bilinear interpolation; pixels outside the field of view stay black.

Three probe kinds:
    linear       parallel vertical scan lines, rectangular field of view;
    curvilinear  lines fan out from a virtual apex above the skin (convex footprint of radius r0);
    phased       lines fan out from (almost) a point at the top centre (cardiac sector).

All coordinates are display pixels: x to the right, y downwards, (0, 0) the top-left pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

PROBE_KINDS = ("linear", "curvilinear", "phased")


@dataclass(frozen=True)
class Probe:
    """A field of view on an (height, width) display.

    Attributes:
        kind: one of ``PROBE_KINDS``.
        height, width: display size in pixels.
        span: linear: fraction of the width covered by the lines; sector: half-angle in radians.
        apex_radius: sector only: radius of the probe face (r0) in pixels (about 0 for phased).
    """

    kind: str
    height: int
    width: int
    span: float = 1.0
    apex_radius: float = 0.0

    def __post_init__(self):
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"probe kind {self.kind!r} is not one of {PROBE_KINDS}")
        if self.height < 16 or self.width < 16:
            raise ValueError(f"display {self.height}x{self.width} is too small (>= 16 px)")


class BeamGrid:
    """Beam-space sampling of a ``Probe`` and the tables that scan-convert it.

    Attributes (beam space, arrays of shape (D, L), float32):
        x, y: display coordinates of every beam sample.
        depth: distance along the line from the probe face, pixels.
        lateral: position across lines, pixels of arc length at mid-depth (beam coordinates).
        line_spacing: (D,) distance between neighbouring lines at each depth, pixels.
    """

    def __init__(self, probe: Probe):
        self.probe = probe
        h, w = probe.height, probe.width
        if probe.kind == "linear":
            n_lines = max(8, round(w * min(max(probe.span, 0.2), 1.0)))
            self.shape = (h, n_lines)
            self._left = (w - n_lines) // 2
            cols = np.arange(n_lines, dtype=np.float32) + self._left
            rows = np.arange(h, dtype=np.float32)
            self.x = np.broadcast_to(cols[None, :], self.shape).copy()
            self.y = np.broadcast_to(rows[:, None], self.shape).copy()
            self.depth = self.y.copy()
            self.lateral = self.x - self._left
            self.line_spacing = np.ones(h, dtype=np.float32)
            return
        half = float(probe.span)
        if not 0.1 <= half <= 1.2:
            raise ValueError(f"sector half-angle {half} rad is outside [0.1, 1.2]")
        r0 = float(probe.apex_radius)
        # apex above the display so that the top of the face touches row 0
        self.apex = (w / 2.0 - 0.5, -r0)
        r_max = h - 0.5 + r0
        n_depth, n_lines = h, max(16, round(w * 0.9))
        self.shape = (n_depth, n_lines)
        self.r = np.linspace(r0, r_max, n_depth, dtype=np.float32)
        self.theta = np.linspace(-half, half, n_lines, dtype=np.float32)
        rr, tt = np.meshgrid(self.r, self.theta, indexing="ij")
        self.x = (self.apex[0] + rr * np.sin(tt)).astype(np.float32)
        self.y = (self.apex[1] + rr * np.cos(tt)).astype(np.float32)
        self.depth = (rr - r0).astype(np.float32)
        mid = r0 + (r_max - r0) / 2
        self.lateral = (tt * mid + mid * half).astype(np.float32)
        self.line_spacing = np.maximum(self.r * (2 * half / (n_lines - 1)), 1e-3).astype(np.float32)

    @property
    def depth_extent(self) -> float:
        """Depth of the deepest sample, pixels."""
        return float(self.probe.height)

    @cached_property
    def _tables(self):
        """Flat indices (inside pixels) + 4 bilinear neighbours and weights in beam space."""
        h, w = self.probe.height, self.probe.width
        d, n = self.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if self.probe.kind == "linear":
            fi, fj = yy, xx - self._left
        else:
            dx, dy = xx - self.apex[0], yy - self.apex[1]
            r = np.hypot(dx, dy)
            t = np.arctan2(dx, dy)
            fi = (r - self.r[0]) / (self.r[1] - self.r[0])
            fj = (t - self.theta[0]) / (self.theta[1] - self.theta[0])
        inside = (fi >= 0) & (fi <= d - 1) & (fj >= 0) & (fj <= n - 1)
        pix = np.flatnonzero(inside)
        fi, fj = fi.ravel()[pix], fj.ravel()[pix]
        i0 = np.minimum(np.floor(fi).astype(np.int64), d - 2)
        j0 = np.minimum(np.floor(fj).astype(np.int64), n - 2)
        ai, aj = (fi - i0).astype(np.float32), (fj - j0).astype(np.float32)
        base = i0 * n + j0
        idx = np.stack([base, base + 1, base + n, base + n + 1])
        wts = np.stack([(1 - ai) * (1 - aj), (1 - ai) * aj, ai * (1 - aj), ai * aj]).astype(np.float32)
        return pix, idx, wts, fi.astype(np.float32), fj.astype(np.float32)

    @cached_property
    def fov(self) -> np.ndarray:
        """(H, W) bool: display pixels inside the field of view."""
        out = np.zeros(self.probe.height * self.probe.width, dtype=bool)
        out[self._tables[0]] = True
        return out.reshape(self.probe.height, self.probe.width)

    @cached_property
    def display_coords(self) -> dict[str, np.ndarray]:
        """Coordinates of the inside display pixels, each (P,) float32: x, y, depth, lateral.

        Shapes defined in beam coordinates (depth, lateral) are rasterised with these.
        """
        pix, idx, wts, fi, fj = self._tables
        w = self.probe.width
        out = {"x": (pix % w).astype(np.float32), "y": (pix // w).astype(np.float32)}
        out["depth"] = self._interp(self.depth, idx, wts)
        out["lateral"] = self._interp(self.lateral, idx, wts)
        return out

    @staticmethod
    def _interp(beam: np.ndarray, idx: np.ndarray, wts: np.ndarray) -> np.ndarray:
        flat = beam.ravel()
        return (flat[idx[0]] * wts[0] + flat[idx[1]] * wts[1]
                + flat[idx[2]] * wts[2] + flat[idx[3]] * wts[3])

    def scan_convert(self, beam: np.ndarray) -> np.ndarray:
        """(D, L) float beam image -> (H, W) float32 display, 0 outside the field of view."""
        if beam.shape != self.shape:
            raise ValueError(f"beam image of shape {beam.shape}, expected {self.shape}")
        h, w = self.probe.height, self.probe.width
        if self.probe.kind == "linear":
            out = np.zeros((h, w), dtype=np.float32)
            out[:, self._left:self._left + self.shape[1]] = beam
            return out
        pix, idx, wts, _, _ = self._tables
        out = np.zeros(h * w, dtype=np.float32)
        out[pix] = self._interp(beam.astype(np.float32, copy=False), idx, wts)
        return out.reshape(h, w)


def make_probe(kind: str, height: int, width: int, rng: np.random.Generator) -> Probe:
    """A plausible random ``Probe`` of ``kind`` for an (height, width) display."""
    if kind == "linear":
        return Probe("linear", height, width, span=float(rng.uniform(0.78, 1.0)))
    if kind == "curvilinear":
        r0 = float(rng.uniform(0.25, 0.6)) * height
        # widest half-angle whose bottom still fits the display width
        fit = np.arcsin(min(0.98, (width / 2 - 1) / (height + r0)))
        return Probe("curvilinear", height, width, span=float(min(fit, rng.uniform(0.5, 0.75))),
                     apex_radius=r0)
    if kind == "phased":
        r0 = float(rng.uniform(0.01, 0.04)) * height
        fit = np.arcsin(min(0.98, (width / 2 - 1) / (height + r0)))
        return Probe("phased", height, width, span=float(min(fit, rng.uniform(0.6, 0.78))),
                     apex_radius=r0)
    raise ValueError(f"probe kind {kind!r} is not one of {PROBE_KINDS}")
