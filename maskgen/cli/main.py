"""``maskgen``: stage one of ANAUS (datasets, phantom, LP-SAM adaptation, mask store).

Subcommands are imported lazily, so ``maskgen datasets`` does not pay for torch or SAM.
"""

from __future__ import annotations

import importlib

import click

from maskgen.cli.options import StrictGroup, version_option
from maskgen.common.logs import setup_logging

# name -> ("module:attribute" of a click command, its one-line help). The help is what
# `maskgen --help` lists, so listing the commands imports none of them (torch, SAM); a test
# checks that each line is the first sentence of its command's docstring.
LAZY_COMMANDS = {
    "datasets": ("maskgen.cli.datasets:datasets",
                 "The dataset registry: every dataset, its role and where its root comes from."),
    "phantom": ("maskgen.cli.phantom:phantom",
                "Generate the synthetic B-mode phantom: butus, camus, ddti, tg3k, pocus, busi, udiat, "
                "tn3k and hmcqu, each in its native layout (read them with ``maskgen datasets show NAME "
                "--root OUT/NAME``)."),
    "adapt": ("maskgen.cli.adapt:adapt",
              "One-time LP-SAM adaptation: phase 1 (adapters + conv branch, GT prompts), phase 2 (latent "
              "prompt engine), then Dice/IoU per anatomy class on grouped held-out pairs (report.md)."),
    "run": ("maskgen.cli.run:run",
            "Generate up to K anatomy masks per frame with LP-SAM and write the mask store."),
    "inspect": ("maskgen.cli.inspect:inspect_store",
                "Summarise a mask store, plot its distributions and draw a contact sheet of frames with "
                "their masks (contours, scores, frame names)."),
    "verify": ("maskgen.cli.inspect:verify",
               "Check that manifest, arrays and attributes agree and that every chunk of every array "
               "exists and decodes; exit status 1 on any mismatch."),
    "export-masks": ("maskgen.cli.export_masks:export_masks",
                     "Write a store's frames, label images (each pixel: its best-scoring mask) and per-mask "
                     "files, with index.csv (one row per mask) and frames.csv, for ITK-SNAP, 3D Slicer or CVAT."),
    "evaluate-adapt": ("maskgen.cli.evaluate_adapt:evaluate_adapt",
                       "Per-class Dice of an adaptation on labelled frames it never trained on."),
    "score": ("maskgen.cli.score:score", "Score a mask store against a labelled dataset's masks."),
    "oracle": ("maskgen.cli.phantom:oracle",
               "Write a copy of a phantom butus store with the phantom's ground-truth anatomy as its masks."),
}
COMMANDS = {name: target for name, (target, _) in LAZY_COMMANDS.items()}


class LazyGroup(StrictGroup):
    """A click group whose subcommands are ``module:attr`` strings imported on first use.

    ``lazy_commands``: name -> (``module:attr``, one-line help); the help lines are what the
    group's ``--help`` lists, so listing imports nothing.
    """

    def __init__(self, *args, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name][0].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        """The command list of ``--help``, as click writes it, from the table's help lines."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.lazy_commands:
                line = click.Command(name, help=self.lazy_commands[name][1])  # shortened as click does
                rows.append((name, line.get_short_help_str(limit)))
            elif (cmd := super().get_command(ctx, name)) is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
