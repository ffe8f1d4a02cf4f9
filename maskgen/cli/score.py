"""``maskgen score STORE --dataset NAME --root DIR``: the store's masks against a labelled
dataset's masks, next to anatomy-free masks on the same frames (``maskgen.generate.scoring``)."""

from __future__ import annotations

from pathlib import Path

import click

from maskgen.cli.options import StrictCommand
from maskgen.datasets.frames import DatasetError
from maskgen.store import StoreError


@click.command("score", cls=StrictCommand)
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", default=None,
              help="Registry name of the labelled dataset (default: the dataset the store was made from).")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Dataset root (default: the dataset's environment variable).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Report path without suffix; writes OUT.json and OUT.md (default: STORE/score).")
@click.option("--baselines", default="grid2x2,grid4x4,superpixel,threshold", show_default=True,
              help="Comma-separated anatomy-free mask sources to compare with ('' for none).")
@click.option("--limit", default=None, type=int, help="Only the first N ok frames of the store.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def score(store, dataset, root, out, baselines, limit, no_progress):
    """Score a mask store against a labelled dataset's masks.

    For each labelled structure of each frame: best-of-K Dice (the best of the frame's masks),
    the top-scored mask's Dice and the share with a mask at Dice >= 0.5; masks per frame and
    coverage; per label and per class where the dataset has them; and the same for grid,
    superpixel and smoothed-threshold masks made on the same frames with the same K.
    Writes OUT.json and OUT.md and prints the table over all structures.
    """
    from tqdm import tqdm

    from maskgen.common.files import atomic_write_json, atomic_write_text
    from maskgen.datasets.registry import open_dataset
    from maskgen.generate.scoring import ScoreError, report_markdown, score_store
    from maskgen.store import open_store

    if limit is not None and limit < 1:
        raise click.BadParameter(f"must be >= 1, got {limit}", param_hint="--limit")
    names = [b.strip() for b in baselines.split(",") if b.strip()]
    try:
        opened = open_store(store)
        name = dataset or opened.attrs.get("generation", {}).get("dataset")
        if not name:
            raise ScoreError(f"{store}: the store does not record its dataset; pass --dataset")
        reader = open_dataset(name, root)
        rows = opened.manifest.num_rows if limit is None else min(limit, opened.manifest.num_rows)
        with tqdm(total=rows, desc=f"scoring {name}", unit="frame", disable=no_progress) as bar:
            report = score_store(opened, reader, baselines=names, limit=limit, progress=bar.update)
    except (StoreError, DatasetError, ScoreError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    prefix = Path(out) if out else Path(store) / "score"
    text = report_markdown(report)
    atomic_write_json(prefix.with_suffix(".json"), report)
    atomic_write_text(prefix.with_suffix(".md"), text + "\n")
    click.echo(report_markdown(report, groups=["all"]))
    click.echo(f"report (per label / class too): {prefix.with_suffix('.md')} and {prefix.with_suffix('.json')}")
