"""Anatomy outlines as signed fields: negative inside, about a pixel distance near the edge.

A shape is evaluated at arbitrary point arrays (the beam samples for rendering, the display
pixels for the ground-truth mask), so the rendered anatomy and its mask come from one
definition. Soft edges come from a sigmoid of the field when rendering; the mask is the
exact set ``field < 0``.

    Blob   star-shaped outline: an ellipse whose radius is modulated by Fourier harmonics
           (low orders: lobulated; high orders with large amplitude: irregular / spiculated).
    Band   the region between two smooth curves ``y = top(x)`` and ``y = bottom(x)``
           (tissue layers, the pleura, a vessel in long axis, an A-line in beam coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

_LUT_SIZE = 2048  # angular samples of a blob outline (0.18 degree)


@dataclass(frozen=True)
class Blob:
    """Ellipse (centre cx, cy; semi-axes a, b px; rotation angle rad) with a modulated radius.

    ``harmonics`` holds (order k, relative amplitude, phase) triples: the outline radius at polar
    angle phi is ``1 + sum amp * cos(k * phi + phase)`` times the ellipse radius.
    """

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0
    harmonics: tuple[tuple[int, float, float], ...] = ()

    def bbox(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, xmax, ymin, ymax) enclosing the outline plus ``margin`` px."""
        reach = max(self.a, self.b) * (1 + sum(abs(h[1]) for h in self.harmonics)) + margin
        return self.cx - reach, self.cx + reach, self.cy - reach, self.cy + reach

    def field(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Signed field at points (x, y) (any equal shapes): < 0 inside, ~px near the edge."""
        dx, dy = x - self.cx, y - self.cy
        c, s = float(np.cos(self.angle)), float(np.sin(self.angle))
        u = (dx * c + dy * s) / self.a
        v = (-dx * s + dy * c) / self.b
        rho = np.sqrt(u * u + v * v)
        radius = 1.0
        if self.harmonics:
            # outline radius from a table over the polar angle: one arctan2 and one gather
            # per point, whatever the number of harmonics
            idx = np.arctan2(v, u) * np.float32(_LUT_SIZE / (2 * np.pi)) + np.float32(_LUT_SIZE)
            radius = self._radius_table[idx.astype(np.int32) % _LUT_SIZE]  # floor, angle mod 2 pi
        scale = min(self.a, self.b)
        return (rho - radius) * scale

    @cached_property
    def _radius_table(self) -> np.ndarray:
        """(_LUT_SIZE,) float32 outline radius at polar angles 2 pi (i + 0.5) / _LUT_SIZE."""
        phi = (np.arange(_LUT_SIZE) + 0.5) * (2 * np.pi / _LUT_SIZE)
        r = 1.0 + sum(amp * np.cos(k * phi + ph) for k, amp, ph in self.harmonics)
        return r.astype(np.float32)

    def moved(self, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0,
              scale_y: float | None = None) -> Blob:
        """A copy translated by (dx, dy) and scaled about its centre."""
        sy = scale if scale_y is None else scale_y
        return self.with_axes(self.a * scale, self.b * sy, dx, dy)

    def with_axes(self, a: float, b: float, dx: float = 0.0, dy: float = 0.0) -> Blob:
        """The same outline shape with semi-axes (a, b), moved by (dx, dy)."""
        out = Blob(self.cx + dx, self.cy + dy, a, b, self.angle, self.harmonics)
        if self.harmonics:  # same outline shape: compute the table once, share it
            out.__dict__["_radius_table"] = self._radius_table
        return out


@dataclass(frozen=True)
class Curve:
    """A smooth curve ``y(x) = base + slope * x + sum amp * sin(2 pi x / period + phase)``."""

    base: float
    slope: float = 0.0
    waves: tuple[tuple[float, float, float], ...] = ()  # (amplitude px, period px, phase)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.base + self.slope * x
        for amp, period, phase in self.waves:
            out = out + amp * np.sin(2 * np.pi * x / period + phase)
        return out

    def moved(self, dx: float = 0.0, dy: float = 0.0) -> Curve:
        """The curve translated by (dx, dy): y'(x) = y(x - dx) + dy."""
        waves = tuple((a, p, ph - 2 * np.pi * dx / p) for a, p, ph in self.waves)
        return Curve(self.base + dy - self.slope * dx, self.slope, waves)


@dataclass(frozen=True)
class Band:
    """Points with ``top(x) < y < bottom(x)``; ``x``/``y`` may be beam coordinates."""

    top: Curve
    bottom: Curve
    x_range: tuple[float, float] = field(default=(-1e9, 1e9))

    def bbox(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        lo = min(self.top.base, self.bottom.base)
        hi = max(self.top.base, self.bottom.base)
        reach = sum(abs(w[0]) for w in self.top.waves + self.bottom.waves)
        extra = reach + margin + 1e4 * (abs(self.top.slope) + abs(self.bottom.slope))
        return self.x_range[0] - margin, self.x_range[1] + margin, lo - extra, hi + extra

    def moved(self, dx: float = 0.0, dy: float = 0.0) -> Band:
        lo, hi = self.x_range
        rng = (lo + dx, hi + dx) if lo > -1e8 else self.x_range
        return Band(self.top.moved(dx, dy), self.bottom.moved(dx, dy), rng)

    def field(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        f = np.maximum(self.top(x) - y, y - self.bottom(x))
        if self.x_range != (-1e9, 1e9):
            f = np.maximum(f, np.maximum(self.x_range[0] - x, x - self.x_range[1]))
        return f


def random_harmonics(rng: np.random.Generator, irregularity: float,
                     spiculation: float = 0.0) -> tuple[tuple[int, float, float], ...]:
    """Outline harmonics: ``irregularity`` (0..1) lobulates, ``spiculation`` (0..1) adds spikes.

    Amplitudes fall off with the order so that a smooth outline stays smooth; spiculation adds
    orders 9..16 whose summed amplitude makes thin protrusions.
    """
    out = []
    for k in range(2, 6):
        amp = irregularity * rng.uniform(0.02, 0.12) / (k - 1) ** 0.5
        out.append((k, float(amp), float(rng.uniform(0, 2 * np.pi))))
    if spiculation > 0:
        for k in rng.choice(np.arange(9, 17), size=4, replace=False):
            out.append((int(k), float(spiculation * rng.uniform(0.03, 0.07)),
                        float(rng.uniform(0, 2 * np.pi))))
    return tuple(out)
