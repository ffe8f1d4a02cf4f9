"""End to end: the phantom's nine native layouts are read by the real readers (slow: ~40 s)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from maskgen.cli.main import main
from maskgen.datasets.registry import dataset_names, get_spec, open_dataset


@pytest.mark.slow
def test_every_reader_finds_frames_in_the_phantom(tmp_path):
    made = CliRunner().invoke(main, ["phantom", "--out", str(tmp_path), "--scale", "quick", "--seed", "0"])
    assert made.exit_code == 0, made.output
    for name in dataset_names():
        reader = open_dataset(name, tmp_path / name)
        refs = reader.refs()
        spec = get_spec(name)
        assert refs and not reader.problems, (name, reader.problems[:3])
        assert len({r.group for r in refs}) > 1
        if spec.classes:
            assert {r.label for r in refs} == set(spec.classes), name
        labelled = [r for r in refs if r.has_mask]
        assert bool(labelled) == bool(spec.labels), name
        frame = reader.load(labelled[0] if labelled else refs[0])
        assert frame.image.dtype == np.uint8 and frame.image.ndim == 2
        if labelled:
            assert frame.mask.shape == frame.image.shape
            assert set(np.unique(frame.mask)) <= {0, *spec.labels} and frame.mask.any(), name
    shown = CliRunner().invoke(main, ["datasets", "show", "phantom", "--root", str(tmp_path)])
    assert shown.exit_code == 0 and "MISSING" not in shown.output
