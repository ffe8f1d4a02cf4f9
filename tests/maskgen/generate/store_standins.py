"""Small deterministic stand-ins for a dataset reader and LP-SAM, to test the job mechanics.

tests/maskgen/conftest.py puts this folder on sys.path, so dask worker processes (which inherit
it) unpickle the stand-ins by importing this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from maskgen.datasets.frames import CorruptFrameError, Frame, FrameRef

BAD = {3: "corrupt", 7: "blank", 11: "tiny", 13: "rgb", 17: "empty"}


def toy_image(i: int) -> np.ndarray:
    """A (H, W) uint8 frame of speckle with bright and mid-grey discs, different per i."""
    rng = np.random.default_rng(i)
    h, w = 48 + (i % 3) * 16, 64 + (i % 5) * 8
    img = rng.integers(0, 60, size=(h, w)).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for j in range(1 + i % 3):
        cy, cx, r = rng.integers(10, h - 10), rng.integers(10, w - 10), rng.integers(5, 10)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 230 if j % 2 == 0 else 140
    return img


class ToyReader:
    """refs()/load() like a registry reader; frames listed in ``BAD`` misbehave."""

    def __init__(self, n: int, bad: dict[int, str] | None = None):
        self.n, self.bad = n, BAD if bad is None else bad
        self.problems = []

    def refs(self) -> list[FrameRef]:
        return [FrameRef("toy", f"video{i // 6}/frame{i:03d}.png", 0, f"video{i // 6}") for i in range(self.n)]

    def load(self, ref: FrameRef) -> Frame:
        i = int(ref.source[-7:-4])
        kind = self.bad.get(i)
        if kind == "corrupt":
            raise CorruptFrameError(ref.source, "truncated PNG stream")
        img = toy_image(i)
        if kind == "blank":
            img = np.zeros_like(img)
        elif kind == "tiny":
            img = img[:5, :9]
        elif kind == "rgb":
            img = np.stack([img] * 3, axis=-1)
        elif kind == "empty":
            img = img[:0]
        return Frame(ref, img)


@dataclass(frozen=True)
class ToyReaderSpec:
    n: int = 22
    dataset: str = "toy"

    def open(self):
        return ToyReader(self.n)


class ThresholdPredictor:
    """T = 4 tokens: bright (>200), bright again (a near-duplicate), mid+bright (>100), dark.

    Scores are fixed per token, so tests can predict the post-processed order. ``padding``
    adds two tokens that LP-SAM's padding masks stand for: the black pixels (the letter-box
    padding, wholly outside the frame) and the top quarter of the square (straddling the
    frame's top edge on a wide frame).
    """

    TOKEN_SCORES = (0.9, 0.8, 0.7, 0.2)
    PADDING_SCORES = (0.95, 0.85)

    def __init__(self, input_size: int, delay: float = 0.0, fail_on_call: int | None = None,
                 padding: bool = False):
        self.input_size, self.delay, self.fail_on_call = input_size, delay, fail_on_call
        self.padding = padding
        self.sha256 = "0" * 64
        self.config = {"model": "threshold-standin"}
        self.calls = 0

    def __call__(self, images):
        import torch

        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise RuntimeError("injected failure")
        if self.delay:
            time.sleep(self.delay)
        x = images.float()
        tokens = [(x > 200).float(), (x > 205).float() * 0.9, (x > 100).float() * 0.8, torch.zeros_like(x)]
        token_scores = self.TOKEN_SCORES
        if self.padding:
            top = torch.zeros_like(x)
            top[:, : x.shape[1] // 4] = 0.9
            tokens += [(x < 1).float(), top]
            token_scores = token_scores + self.PADDING_SCORES
        probs = torch.stack(tokens, dim=1)
        scores = torch.tensor(token_scores, device=x.device).expand(len(x), -1)
        return probs, scores


@dataclass(frozen=True)
class ToyPredictorSpec:
    input_size: int = 64
    delay: float = 0.0
    fail_on_call: int | None = None
    padding: bool = False

    def checkpoint_sha256(self) -> str:
        return "0" * 64

    def load(self, device):
        return ThresholdPredictor(self.input_size, self.delay, self.fail_on_call, self.padding)
