"""Random material fields fixed in the tissue: scatterers and smooth texture.

A ``TissueFields`` holds, for one scene or one video, a complex Gaussian scatterer field at
display resolution (plus a margin for motion) and two smooth log-echogenicity textures
(isotropic blobs; horizontal fibrillar streaks). Frames sample them at the material
coordinates of their beam samples, so speckle and texture move with the tissue from one
video frame to the next instead of flickering.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


class TissueFields:
    """Scatterers and textures over the display area enlarged by ``margin`` pixels.

    Args:
        rng: the random source (consumed here; sampling is then deterministic).
        height, width: display size in pixels.
        margin: how far (px) material may move in from outside the display.
        blob_scale: correlation length of the isotropic texture, px.
        streak_scale: (along x, along y) correlation lengths of the fibrillar texture, px.
    """

    def __init__(self, rng: np.random.Generator, height: int, width: int, margin: int = 48,
                 blob_scale: float = 7.0, streak_scale: tuple[float, float] = (18.0, 2.5)):
        self.margin = margin
        self.h, self.w = height + 2 * margin, width + 2 * margin
        noise = rng.standard_normal((2, self.h, self.w), dtype=np.float32)
        self.scatter = ((noise[0] + 1j * noise[1]) * np.float32(np.sqrt(0.5))).astype(np.complex64)
        # both textures live on one coarse lattice (rows step, cols step) packed as complex
        # numbers, so one bilinear pass samples both
        self.step = (streak_scale[1], blob_scale * 0.8)
        shape = (int(self.h / self.step[0]) + 3, int(self.w / self.step[1]) + 3)
        blob = self._smooth(rng, shape, (blob_scale / self.step[0] * 0.5, blob_scale / self.step[1] * 0.5))
        streak = self._smooth(rng, shape, (0.5, streak_scale[0] / self.step[1] * 0.5))
        # upsampled once to the scatterer lattice, so a frame needs one nearest-sample gather
        zoom = (self.h / shape[0], self.w / shape[1])
        up = [ndimage.zoom(g, zoom, order=1, grid_mode=True, mode="nearest")[: self.h, : self.w]
              for g in (blob, streak)]
        self.texture = (up[0] + 1j * up[1]).astype(np.complex64)

    @staticmethod
    def _smooth(rng, shape, sigma) -> np.ndarray:
        g = rng.standard_normal(shape).astype(np.float32)
        g = ndimage.gaussian_filter(g, sigma, mode="wrap")
        return ((g - g.mean()) / (g.std() + 1e-6)).astype(np.float32)

    def sample(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fields at material coordinates (x, y) (display px, arrays of one shape).

        Returns:
            scatter: complex64, circular Gaussian with E|s|^2 = 1.
            blob, streak: float32 smooth textures, about zero mean and unit variance.
            All are nearest samples of 1-px lattices.
        """
        m = self.margin
        iy = np.clip(np.rint(y + m).astype(np.int32), 0, self.h - 1)
        ix = np.clip(np.rint(x + m).astype(np.int32), 0, self.w - 1)
        idx = iy * self.w + ix
        tex = self.texture.ravel()[idx]
        return self.scatter.ravel()[idx], tex.real, tex.imag
