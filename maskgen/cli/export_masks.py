"""``maskgen export-masks STORE --format png|nifti --out DIR``: masks out to annotation tools."""

from __future__ import annotations

import click

from maskgen.cli.options import StrictCommand
from maskgen.store import StoreError


@click.command("export-masks", cls=StrictCommand)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="Folder to write (must be new or empty).")
@click.option("--format", "fmt", type=click.Choice(["png", "nifti"]), default="png", show_default=True,
              help="png: PNG images (CVAT, any viewer); nifti: .nii.gz (ITK-SNAP, 3D Slicer).")
@click.option("--geometry", type=click.Choice(["store", "original"]), default="store", show_default=True,
              help="store: the S x S letter-boxed frames; original: mapped back to each frame's size.")
@click.option("--per-mask/--no-per-mask", default=True, show_default=True,
              help="Also one binary file per mask (overlapping masks stay whole).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N frames (by row).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def export_masks(store, out, fmt, geometry, per_mask, limit, overwrite):
    """Write a store's frames, label images (each pixel: its best-scoring mask) and per-mask
    files, with index.csv (one row per mask) and frames.csv, for ITK-SNAP, 3D Slicer or CVAT."""
    from maskgen.store import open_store
    from maskgen.store.export import ExportError, ExportOptions
    from maskgen.store.export import export_masks as run_export

    try:
        options = ExportOptions(fmt=fmt, geometry=geometry, per_mask=per_mask, limit=limit)
        info = run_export(open_store(store), out, options, overwrite=overwrite)
    except (StoreError, ExportError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"exported {info['masks']} masks of {info['exported_frames']} frames "
               f"({info['frames'] - info['exported_frames']} failed, listed in frames.csv) to {out} "
               f"as {fmt}; index: {out}/index.csv")
