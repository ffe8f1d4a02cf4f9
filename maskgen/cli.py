"""``maskgen``: stage one of ANAUS (datasets, phantom, LP-SAM adaptation, mask store).

Subcommands are imported lazily, so ``maskgen datasets`` does not pay for torch or SAM.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os

import click

from maskgen.cliutils import StrictGroup, version_option

# name -> "module:attribute" of a click command
COMMANDS = {
    "datasets": "maskgen.registry_cli:datasets",
    "phantom": "maskgen.phantom.cli:phantom",
    "adapt": "maskgen.lpsam.cli:adapt",
    "run": "maskgen.run_cli:run",
    "inspect": "maskgen.inspect_cli:inspect_store",
    "verify": "maskgen.inspect_cli:verify",
    "export-masks": "maskgen.export_cli:export_masks",
    "score": "maskgen.score_cli:score",
}


class LazyGroup(StrictGroup):
    """A click group whose subcommands are ``module:attr`` strings imported on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


EXIT_BUSY = 75  # EX_TEMPFAIL: the output folder is in use; try again later


class OutputBusyError(click.ClickException):
    """Another writer holds the output folder (``maskgen.locks``); exit code ``EXIT_BUSY``."""

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
    from maskgen.cliutils import CONFIG_NAME
    from maskgen.locks import OutputLockedError, output_lock

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(output_lock(folder, command, disposable=(CONFIG_NAME,)))
        except OutputLockedError as err:
            raise OutputBusyError(str(err)) from err
        except OSError as err:
            raise click.ClickException(describe_os_error(err, str(folder))) from err
        yield


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@version_option
def main(verbose: int) -> None:
    """Stage one of ANAUS: datasets, the ultrasound phantom, LP-SAM and the anatomy mask store.

    \b
    Typical use:
      maskgen datasets                       list the registry
      maskgen phantom --out runs/phantom     synthetic data in every native layout
      maskgen adapt --out runs/lpsam         one-time LP-SAM adaptation
      maskgen run --dataset butus --root DIR --checkpoint runs/lpsam --out runs/store
      maskgen inspect runs/store             summary + contact sheet
      maskgen export-masks runs/store --format nifti --out runs/masks   for ITK-SNAP / Slicer / CVAT
      maskgen score runs/store --dataset busi --root DIR   masks vs labels, vs anatomy-free masks
    """
    setup_logging(verbose)


if __name__ == "__main__":
    main()
