"""``maskgen phantom``: synthetic ultrasound in the nine native dataset layouts."""

from __future__ import annotations

from pathlib import Path

import click

from maskgen.cli.options import StrictCommand


@click.command("phantom", cls=StrictCommand)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; writes OUT/<dataset>/ for each dataset and OUT/phantom.json.")
@click.option("--scale", type=click.Choice(["quick", "full"]), default="quick", show_default=True,
              help="quick: CPU demo/tests size (well under a minute); full: about 10x larger.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--dataset", "datasets", multiple=True,
              help="Only these datasets (repeatable); default all nine.")
@click.option("--preview", "preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also render a PNG grid of frames with coloured anatomy masks to this file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def phantom(out: Path, scale: str, seed: int, datasets: tuple[str, ...], preview: Path | None,
            no_progress: bool) -> None:
    """Generate the synthetic B-mode phantom: butus, camus, ddti, tg3k, pocus, busi, udiat,
    tn3k and hmcqu, each in its native layout (read them with ``maskgen datasets show NAME
    --root OUT/NAME``)."""
    from maskgen.phantom.generate import DATASETS, generate

    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise click.BadParameter(f"{bad} not in {list(DATASETS)}", param_hint="--dataset")
    summary = generate(out, scale, seed, datasets or None, show_progress=not no_progress)
    for name, counts in summary.items():
        click.echo(f"{name:6s} {out / name}  {counts}")
    click.echo(f"provenance: {out / 'phantom.json'}")
    if preview is not None:
        from maskgen.phantom.preview import render_preview

        render_preview(preview, seed=seed)
        click.echo(f"preview: {preview}")


@click.command("oracle", cls=StrictCommand)
@click.argument("template", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--phantom", "phantom_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The phantom folder (`maskgen phantom --out`) whose butus frames TEMPLATE holds.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output store (replaced if it exists): TEMPLATE's frames with ground-truth masks.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def oracle(template: Path, phantom_dir: Path, out: Path, no_progress: bool) -> None:
    """Write a copy of a phantom butus store with the phantom's ground-truth anatomy as its masks.

    TEMPLATE is a `maskgen run --dataset butus` store of the phantom at --phantom; OUT keeps its
    frames, rows and manifest and replaces its masks by every connected region of every anatomy
    class the phantom drew (the K largest). Pre-training on OUT (`pretrain run --store OUT`) is
    the oracle beside LP-SAM's masks and the anatomy-free controls: what perfect anatomy masks
    add on the phantom. Every frame is checked against the phantom before anything is written.
    """
    from maskgen.generate.oracle import OracleError, write_oracle_store

    if out.resolve() == template.resolve():
        raise click.BadParameter("--out must differ from TEMPLATE", param_hint="--out")
    try:
        summary = write_oracle_store(template, phantom_dir, out, progress=not no_progress)
    except OracleError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"oracle store: {out}  {summary['frames']} frames, {summary['masks_per_frame']:.1f} masks a frame, "
               f"{100 * summary['coverage']:.0f}% of each frame covered, "
               f"{summary['frames_without_anatomy']} frame(s) without anatomy")
