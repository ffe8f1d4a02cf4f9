"""Every console script answers --help and lists its subcommands."""

from click.testing import CliRunner

from maskgen.cli.main import COMMANDS, main


def test_maskgen_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output


def test_maskgen_help_lines_are_the_commands_own():
    """The listing's help lines (kept in the lazy table so that listing imports nothing) are the
    first sentence of each command's docstring, as click would list them."""
    import click

    from maskgen.cli.main import LAZY_COMMANDS

    ctx = click.Context(main)
    for name, (_, line) in LAZY_COMMANDS.items():
        assert main.get_command(ctx, name).get_short_help_str(10**6) == line, name


def test_maskgen_help_imports_no_subcommand():
    """`maskgen --help` in a fresh interpreter loads neither torch, SAM nor any subcommand module."""
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from maskgen.cli.main import main, COMMANDS;"
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
            "mods = {t.split(':')[0] for t in COMMANDS.values()};"
            "print(sorted(m for m in ('torch', 'segment_anything', 'zarr', *mods) if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
