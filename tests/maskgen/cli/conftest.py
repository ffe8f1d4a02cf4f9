"""Fixtures of the maskgen CLI tests."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image


def write_ddti_folder(root, ddti_sample):
    """A 10-image DDTI folder in its native (SAMUS-style) layout: the genuine sample frame and 9
    speckled frames with a bright disc as the nodule; returns ``root``."""
    shutil.copytree(ddti_sample / "img", root / "img")
    shutil.copytree(ddti_sample / "label", root / "label")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :128]
    for i in range(9):
        cy, cx, r = rng.uniform(30, 60), rng.uniform(40, 90), rng.uniform(10, 20)
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.uint8)
        image = np.clip(rng.gamma(2, 25, mask.shape) + 80 * mask, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "img" / f"{i}.png")
        Image.fromarray(mask).save(root / "label" / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def ddti_folder():
    """``write_ddti_folder`` for fixtures of any scope."""
    return write_ddti_folder


@pytest.fixture
def ddti_root(tmp_path, ddti_sample):
    return write_ddti_folder(tmp_path / "ddti", ddti_sample)
