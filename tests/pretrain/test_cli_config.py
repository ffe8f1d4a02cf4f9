"""`pretrain run --config RUN_DIR/config.toml` replays a run: the same resolved configuration."""

from __future__ import annotations

import json
import tomllib

import pytest
from click.testing import CliRunner

from pretrain.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--epochs", "1", "--batch-size", "4", "--resolution", "32", "--device", "cpu", "--scales", "2",
        "--max-steps", "1", "--mask-source", "superpixel", "--seed", "7", "--damage", "0.1", "0.2", "0.0",
        "--lambda-ctx", "0.5", "--no-sync-bn", "--log-every", "2"]


def test_config_file_replays_the_run(tiny_store, tmp_path):
    first = tmp_path / "first"
    res = CliRunner().invoke(main, ["run", "--store", str(tiny_store), "--out", str(first), *TINY])
    assert res.exit_code == 0, res.output
    assert "device cpu" in res.stderr  # says which device it trains on
    written = tomllib.loads((first / "config.toml").read_text())
    assert written["store"] == str(tiny_store.resolve()) and written["seed"] == 7
    assert written["damage"] == [0.1, 0.2, 0.0] and written["sync-bn"] is False
    assert "resume" not in written and "max-steps" in written

    again = tmp_path / "again"
    res = CliRunner().invoke(main, ["run", "--config", str(first / "config.toml"), "--out", str(again)])
    assert res.exit_code == 0, res.output
    a, b = (json.loads((d / "run.json").read_text()) for d in (first, again))
    assert a["config"] == b["config"] and a["seed"] == b["seed"] == 7
    assert a["inputs"]["store"]["manifest_sha256"] == b["inputs"]["store"]["manifest_sha256"]
    # the replayed run wrote its own config, equal but for --out
    replayed = tomllib.loads((again / "config.toml").read_text())
    assert {k: v for k, v in replayed.items() if k != "out"} == {k: v for k, v in written.items() if k != "out"}


def test_command_line_overrides_config_and_bad_keys_are_named(tiny_store, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'store = "{tiny_store}"\nepochs = 1\nbatch-size = 4\nresolution = 32\n'
                      'device = "cpu"\nscales = 2\nmax-steps = 1\nseed = 3\n')
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["run", "--config", str(config), "--out", str(out), "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["seed"] == 4

    config.write_text('epochs = 1\nepoch = 2\n')
    res = CliRunner().invoke(main, ["run", "--config", str(config), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "'epoch' is not an option of `run`" in res.output
    assert not (tmp_path / "x").exists()
