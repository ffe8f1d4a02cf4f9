"""``maskgen phantom`` from the command line: subset, provenance, preview, bad input."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from maskgen.cli.main import main


def test_phantom_command_subset_and_preview(tmp_path):
    out, preview = tmp_path / "ph", tmp_path / "preview.png"
    res = CliRunner().invoke(main, ["phantom", "--out", str(out), "--dataset", "udiat", "--seed", "3",
                                    "--no-progress", "--preview", str(preview)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["phantom.json", "udiat"]
    info = json.loads((out / "phantom.json").read_text())
    assert info["seed"] == 3 and info["config"]["datasets"] == ["udiat"]
    assert info["inputs"]["counts"]["udiat"]["benign"] + info["inputs"]["counts"]["udiat"]["malignant"] == 40
    pic = np.asarray(Image.open(preview))
    assert pic.ndim == 3 and pic.shape[1] > 1000 and pic.std() > 10


def test_phantom_command_rejects_unknown_dataset(tmp_path):
    res = CliRunner().invoke(main, ["phantom", "--out", str(tmp_path), "--dataset", "nope"])
    assert res.exit_code != 0 and "nope" in res.output
