"""Click plumbing shared by the three commands (``maskgen``, ``pretrain``, ``evaluate``).

- ``StrictCommand`` / ``StrictGroup``: a single-value option given twice is an error (click
  would silently keep the last value: ``--dataset butus ... --dataset camus`` made a camus store).
- ``config_option`` / ``write_config``: every job writes ``OUT/config.toml`` with the options it
  ran with, and ``--config FILE`` reads such a file back (options on the command line override
  it). TOML because the configs are files people read and edit: comments explain a recipe, the
  registry's manifests are TOML too, and the standard library reads it (``tomllib``). The writer
  below handles the flat tables of scalars and lists that options are; TOML has no null, so an
  option whose value is None (its default) is left out and takes its default on replay.
- ``version_option``: ``--version`` with the package version and the code revision.
- ``locked_output``: the output folder's writer lock (``maskgen.common.locks``) with its
  failures as one-line click errors (a busy folder exits with ``EXIT_BUSY``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tomllib
from collections import Counter
from pathlib import Path

import click

CONFIG_NAME = "config.toml"


class StrictCommand(click.Command):
    """A click command that refuses a single-value option given more than once."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            refuse_repeated_options(self, ctx, args)
        return super().parse_args(ctx, args)


class StrictGroup(click.Group):
    """A click group whose subcommands (``@group.command()``) are ``StrictCommand``s."""

    command_class = StrictCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            refuse_repeated_options(self, ctx, args)
        return super().parse_args(ctx, args)


StrictGroup.group_class = StrictGroup


def _repeatable(param: click.Parameter) -> bool:
    return (not isinstance(param, click.Option) or param.multiple or param.count
            or not param.expose_value)


def refuse_repeated_options(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    """Raise ``click.UsageError`` when a single-value option occurs twice in ``args``."""
    parser = command.make_parser(ctx)
    try:
        _, _, order = parser.parse_args(args=list(args))
    except click.UsageError:
        return  # the real parse reports it, with its own message
    counts = Counter(p.name for p in order if not _repeatable(p))
    for param in order:
        if counts.get(param.name, 0) > 1:
            names = " / ".join(param.opts + param.secondary_opts)
            raise click.UsageError(
                f"{names} was given {counts[param.name]} times but takes one value (only the last "
                "would count); give it once", ctx)


# ---- the output folder's lock, I/O failures as one line -----------------------------

EXIT_BUSY = 75  # EX_TEMPFAIL: the output folder is in use; try again later


class OutputBusyError(click.ClickException):
    """Another writer holds the output folder (``maskgen.common.locks``); exit code ``EXIT_BUSY``."""

    exit_code = EXIT_BUSY


def describe_os_error(err: OSError, what: str = "") -> str:
    """One line for an I/O failure: which file, why, and what would help."""
    where = err.filename or what or "the output folder"
    reason = err.strerror or str(err)
    hint = {errno.ENOSPC: "free some space or choose another output folder",
            errno.EDQUOT: "free some space or choose another output folder",
            errno.EROFS: "the file system is read-only; choose another output folder",
            errno.EACCES: "no permission to write there; choose another output folder",
            errno.EPERM: "no permission to write there; choose another output folder"}.get(err.errno)
    return f"cannot write {os.fspath(where)}: {reason}" + (f" ({hint})" if hint else "")


@contextlib.contextmanager
def locked_output(folder, command: str):
    """Hold ``folder``'s writer lock for the block, with its failures as one-line click errors.

    A live holder gives ``OutputBusyError`` (exit 75); a folder that cannot be created or
    written gives one line naming it. Nothing in the folder is touched in either case.
    """
    from maskgen.common.locks import OutputLockedError, output_lock

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(output_lock(folder, command, disposable=(CONFIG_NAME,)))
        except OutputLockedError as err:
            raise OutputBusyError(str(err)) from err
        except OSError as err:
            raise click.ClickException(describe_os_error(err, str(folder))) from err
        yield


# ---- --config FILE ----------------------------------------------------------------------

def _config_keys(command: click.Command) -> dict[str, click.Option]:
    """Config key -> option: the first long name without dashes (``batch-size``) and the
    parameter name (``batch_size``) both work."""
    keys = {}
    for param in command.params:
        if not isinstance(param, click.Option) or not param.expose_value or param.name == "config":
            continue
        keys[param.name] = param
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = param
    return keys


def config_key(param: click.Option) -> str:
    """The key an option has in a config file: its first long name without the dashes."""
    return next((o[2:] for o in param.opts if o.startswith("--")), param.name)


def read_config(path: str | os.PathLike, command: click.Command) -> dict[str, object]:
    """Parse a config file into click's ``default_map`` (parameter name -> value).

    Raises:
        click.BadParameter: the file does not parse, or names an option the command lacks.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise click.BadParameter(f"{path} is not a readable TOML file ({err})", param_hint="--config") from err
    keys = _config_keys(command)
    unknown = sorted(k for k in data if k not in keys)
    if unknown:
        known = sorted({config_key(p) for p in keys.values()})
        raise click.BadParameter(f"{path}: {', '.join(map(repr, unknown))} is not an option of "
                                 f"`{command.name}` (options: {', '.join(known)})", param_hint="--config")
    return {keys[k].name: value for k, value in data.items()}


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **read_config(value, ctx.command)}


def config_option(fn):
    """``--config FILE``: option values from a TOML file (e.g. a run's ``config.toml``)."""
    return click.option(
        "--config", type=click.Path(exists=True, dir_okay=False), is_eager=True, expose_value=False,
        callback=_load_config, metavar="FILE.toml",
        help="Read options from this TOML file (the config.toml a run wrote, or one of configs/); "
             "options on the command line override it.")(fn)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a config file")


def config_text(ctx: click.Context, exclude: tuple[str, ...] = ()) -> str:
    """The options ``ctx`` ran with as TOML (paths made absolute, None values left out)."""
    command = " ".join(ctx.command_path.split())
    lines = [f"# `{command}` configuration, written by anaus {_version_text()}.",
             f"# Replay: {command} --config THIS_FILE [--out NEW_DIR]; options on the command line",
             "# override the values here, options absent here take their defaults."]
    for param in ctx.command.params:
        if (not isinstance(param, click.Option) or not param.expose_value or param.name in exclude
                or param.name == "config"):
            continue
        value = ctx.params.get(param.name)
        if value is None:
            continue
        if isinstance(param.type, click.Path):
            value = [os.path.abspath(v) for v in value] if isinstance(value, list | tuple) else os.path.abspath(value)
        lines.append(f"{config_key(param)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(out_dir: str | os.PathLike, ctx: click.Context | None = None,
                 exclude: tuple[str, ...] = ()) -> Path:
    """Write ``OUT_DIR/config.toml`` (atomically) from the current click context."""
    from maskgen.common.files import atomic_write_text

    path = Path(out_dir) / CONFIG_NAME
    atomic_write_text(path, config_text(ctx or click.get_current_context(), exclude))
    return path


# ---- --version --------------------------------------------------------------------------

def _version_text() -> str:
    from maskgen import __version__
    from maskgen.common.provenance import code_revision

    return f"{__version__} (code revision {code_revision()})"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{ctx.info_name} (anaus) {_version_text()}")
        ctx.exit()


def version_option(fn):
    """``--version``: the package version and the git revision of the code."""
    return click.option("--version", is_flag=True, is_eager=True, expose_value=False, callback=_print_version,
                        help="Print the version and code revision, then exit.")(fn)
