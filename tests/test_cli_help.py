"""Every console script answers --help and lists its subcommands."""

from click.testing import CliRunner

from maskgen.cli import COMMANDS, main


def test_maskgen_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output
