"""The README's real-data recipe runs as written: its two-dataset corpus (Butterfly + CAMUS
into one store, configs/real-data/run-corpus.toml), verify, pre-training
(configs/real-data/pretrain.toml) and export, on the phantom's butus + camus. The roots and
the budget are given on the command line, which overrides a config file; ``compile = true`` is
dropped from a copy of pretrain.toml (torch.compile takes minutes on a CPU, the run is the same)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from maskgen.cli.main import main as maskgen_main
from maskgen.lpsam.testing import make_random_adapt_dir
from maskgen.phantom.generate import PhantomScale, generate
from maskgen.store import open_store
from pretrain.cli import main as pretrain_main

REPO = Path(__file__).resolve().parents[1]
SCALE = PhantomScale(butus=1, camus=1, ddti=0, tg3k=0, pocus=0, busi=0, udiat=0, tn3k=0, hmcqu=0)
QUICK = {  # the recipe's budget is for GPUs: these take its place on the test's CPU
    "maskgen run": ["--workers", "1", "--batch-size", "4", "--device", "cpu", "--no-progress", "--chunk", "8",
                    "--limit", "14"],  # the 12 butus frames + the first 2 of camus
    "pretrain run": ["--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--resolution", "64",
                     "--warmup-epochs", "1", "--device", "cpu", "--threads", "1"],
}


def recipe_commands() -> list[str]:
    """The stage-one and stage-two commands of the README's "From the phantom to real data" block."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## From the phantom to real data"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    lines = [line.split(" #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line.startswith(("maskgen run", "maskgen verify", "pretrain "))]


def test_readme_recipe_builds_a_butterfly_camus_corpus_and_pretrains_on_it(tmp_path, monkeypatch):
    phantom = tmp_path / "phantom"
    generate(phantom, SCALE, seed=4, datasets=("butus", "camus"), show_progress=False)
    make_random_adapt_dir(tmp_path / "runs" / "lpsam")
    pretrain_toml = tmp_path / "pretrain.toml"
    pretrain_toml.write_text("".join(line for line in (REPO / "configs/real-data/pretrain.toml").read_text()
                                     .splitlines(keepends=True) if not line.startswith("compile")))
    monkeypatch.chdir(tmp_path)  # the recipe's relative runs/ paths land here
    commands = recipe_commands()
    assert [c.split()[:2] for c in commands] == [["maskgen", "run"], ["maskgen", "verify"], ["pretrain", "run"],
                                                 ["pretrain", "export"]]
    roots = ["--root", str(phantom / "butus"), "--root", str(phantom / "camus")]
    for command in commands:
        args = shlex.split(command.replace("configs/real-data/pretrain.toml", str(pretrain_toml))
                           .replace("configs/real-data/", f"{REPO}/configs/real-data/"))
        program = maskgen_main if args[0] == "maskgen" else pretrain_main
        key = " ".join(args[:2])
        args = args[1:] + QUICK.get(key, []) + (roots if key == "maskgen run" else [])
        result = CliRunner().invoke(program, args)
        assert result.exit_code == 0, (command, result.output)
    store = open_store(tmp_path / "runs" / "store")
    datasets = store.manifest.column("dataset").to_pylist()
    assert set(datasets) == {"butus", "camus"} and datasets == sorted(datasets)
    assert store.attrs["generation"]["dataset"] == "butus+camus"
    assert (tmp_path / "anaus_r18.safetensors").is_file()


@pytest.mark.parametrize("line", ["maskgen run --config configs/real-data/run-corpus.toml", "pretrain run"])
def test_the_recipe_still_has_its_steps(line):
    assert any(c.startswith(line) for c in recipe_commands())
