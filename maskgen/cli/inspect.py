"""``maskgen inspect STORE`` (summary + contact sheet) and ``maskgen verify STORE`` (integrity)."""

from __future__ import annotations

import click

from maskgen.cli.options import StrictCommand
from maskgen.store import StoreError


@click.command("inspect", cls=StrictCommand)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Contact sheet PNG (default: STORE/contact_sheet.png).")
@click.option("--plots", type=click.Path(dir_okay=False), default=None,
              help="Masks-per-frame, score and coverage plots PNG (default: STORE/inspect.png).")
@click.option("--frames", default=24, show_default=True, type=click.IntRange(min=1),
              help="Frames on the contact sheet (at least 1).")
def inspect_store(store, out, plots, frames):
    """Summarise a mask store, plot its distributions and draw a contact sheet of frames with
    their masks (contours, scores, frame names)."""
    from pathlib import Path

    from maskgen.store import open_store
    from maskgen.store.inspection import contact_sheet, summarise_store, summary_figure

    try:
        opened = open_store(store)
    except StoreError as err:
        raise click.ClickException(str(err)) from err
    summary = summarise_store(opened)
    for line in summary.lines(opened.k, opened.size):
        click.echo(line)
    figure = summary_figure(summary, opened.k, opened.size, Path(plots) if plots else Path(store) / "inspect.png",
                            title=f"{Path(store).name}: {summary.frames} frames "
                                  f"({summary.frames - summary.failed} ok, {summary.failed} failed)")
    click.echo(f"plots: {figure}")
    sheet = contact_sheet(opened, Path(out) if out else Path(store) / "contact_sheet.png", n=frames)
    click.echo(f"contact sheet: {sheet}")


@click.command("verify", cls=StrictCommand)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--quick", "quick", type=click.IntRange(1), default=None, is_flag=False, flag_value=16,
              metavar="[N]", help="Decode only N chunks per array (default 16), spread over the store; "
              "every chunk file is still checked to exist.")
def verify(store, quick):
    """Check that manifest, arrays and attributes agree and that every chunk of every array
    exists and decodes; exit status 1 on any mismatch."""
    from maskgen.store.verify import verify_store

    problems = verify_store(store, quick=quick)
    if problems:
        for p in problems:
            click.echo(f"MISMATCH: {p}", err=True)
        click.echo(f"{store}: {len(problems)} problem(s) found", err=True)
        raise SystemExit(1)
    what = f"{quick} chunks per array decoded" if quick else "every chunk decoded"
    click.echo(f"{store}: ok (manifest, arrays and attributes agree; {what})")
