"""A user's mistake with `maskgen` ends in one clear line and a non-zero exit, before any output;
every command of the three CLIs refuses a repeated single-value option, has --version and help."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import evaluate.cli
import pretrain.cli
from maskgen.cli.main import main
from maskgen.cli.options import StrictCommand
from maskgen.store.testing import make_synthetic_store


def error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    make_synthetic_store(path, n=8, size=32, k=2, chunk=4)
    return path


def test_inspect_zero_frames(store):
    before = files_under(store)
    result = CliRunner().invoke(main, ["inspect", str(store), "--frames", "0"])
    assert result.exit_code == 2
    assert "--frames" in error_line(result) and "0 is not in the range x>=1" in error_line(result)
    assert files_under(store) == before  # no contact sheet


def test_run_with_an_unknown_device_writes_nothing(tmp_path):
    adapt = tmp_path / "lpsam"
    adapt.mkdir()
    out = tmp_path / "store"
    result = CliRunner().invoke(main, ["run", "--dataset", "butus", "--root", str(tmp_path), "--checkpoint",
                                       str(adapt), "--out", str(out), "--device", "tpu"])
    assert result.exit_code == 1
    assert "--device 'tpu' is not a device torch knows" in error_line(result)
    assert not out.exists()


def test_run_with_a_repeated_dataset_is_an_error(tmp_path):
    a, b, adapt = tmp_path / "a", tmp_path / "b", tmp_path / "lpsam"
    for d in (a, b, adapt):
        d.mkdir()
    out = tmp_path / "store"
    # --dataset/--root repeat (several datasets into one store); a single-value option may not
    result = CliRunner().invoke(main, ["run", "--dataset", "butus", "--root", str(a), "--dataset", "camus",
                                       "--root", str(b), "--checkpoint", str(adapt), "--out", str(out),
                                       "--k", "8", "--k", "4"])
    assert result.exit_code == 2
    assert "--k was given 2 times but takes one value" in error_line(result)
    assert not out.exists()
    # an alias counts as the same option
    result = CliRunner().invoke(main, ["run", "--dataset", "butus", "--checkpoint", str(adapt), "--lpsam",
                                       str(adapt), "--out", str(out)])
    assert result.exit_code == 2 and "--checkpoint / --lpsam was given 2 times" in error_line(result)


def test_datasets_show_with_a_file_as_root(tmp_path):
    file = tmp_path / "busi.zip"
    file.write_bytes(b"PK")
    result = CliRunner().invoke(main, ["datasets", "show", "busi", "--root", str(file)])
    assert result.exit_code == 2 and "is a file" in error_line(result)
    from maskgen.datasets.frames import DatasetRootError
    from maskgen.datasets.registry import get_spec, resolve_root

    with pytest.raises(DatasetRootError, match="is a file, not a folder"):  # e.g. from $ANAUS_BUSI_ROOT
        resolve_root(get_spec("busi"), file)


def test_adapt_refuses_downstream_datasets(tmp_path):
    out = tmp_path / "lpsam"
    result = CliRunner().invoke(main, ["adapt", "--out", str(out), "--dataset", "busi", "--root", str(tmp_path)])
    assert result.exit_code == 2
    line = error_line(result)
    assert "busi is a downstream evaluation dataset" in line and "--allow-downstream" in line
    assert not out.exists()
    allowed = CliRunner().invoke(main, ["adapt", "--out", str(out), "--dataset", "busi", "--root",
                                        str(tmp_path / "missing"), "--allow-downstream", "--device", "cpu"])
    assert allowed.exit_code == 1 and "downstream evaluation" not in allowed.output
    assert "no data found" in error_line(allowed)
    assert not out.exists()


def _leaves(command, path):
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from _leaves(command.get_command(click.Context(command), name), [*path, name])
    else:
        yield " ".join(path), command


ROOTS = {"maskgen": main, "pretrain": pretrain.cli.main, "evaluate": evaluate.cli.main}


@pytest.mark.parametrize("name", sorted(ROOTS))
def test_every_command_is_strict_helped_and_versioned(name):
    root = ROOTS[name]
    version = CliRunner().invoke(root, ["--version"], prog_name=name)
    assert version.exit_code == 0 and version.output.startswith(f"{name} (anaus) 0.")
    assert "code revision" in version.output
    for path, command in _leaves(root, [name]):
        assert isinstance(command, StrictCommand), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts[0]} has no help text"


JOBS = {"maskgen adapt": ("maskgen", ["adapt"]), "maskgen run": ("maskgen", ["run"]),
        "pretrain run": ("pretrain", ["run"]), "evaluate sweep": ("evaluate", ["sweep"])}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_job_takes_a_config_file(job):
    name, sub = JOBS[job]
    result = CliRunner().invoke(ROOTS[name], [*sub, "--help"])
    assert result.exit_code == 0 and "--config FILE.toml" in result.output
