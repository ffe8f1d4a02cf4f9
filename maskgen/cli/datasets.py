"""``maskgen datasets``: the registry table, ``show`` (what a reader finds) and ``folds``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from maskgen.cli.options import StrictGroup
from maskgen.datasets.frames import DatasetError, DatasetRootError

MAX_PROBLEMS = 20


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@click.group(cls=StrictGroup, invoke_without_command=True)
@click.pass_context
def datasets(ctx: click.Context) -> None:
    """The dataset registry: every dataset, its role and where its root comes from.

    \b
    maskgen datasets                          the table
    maskgen datasets show NAME --root DIR     frames, labelled frames, groups, classes, problems
    maskgen datasets folds NAME --root DIR --out FILE.parquet   grouped k-fold file
    """
    if ctx.invoked_subcommand is not None:
        return
    from maskgen.datasets.registry import all_specs

    rows = [["name", "role", "what", "root env", "set"]]
    for spec in all_specs().values():
        rows.append([spec.name, spec.role, spec.what[:60] + ("..." if len(spec.what) > 60 else ""),
                     spec.root_env, "yes" if os.environ.get(spec.root_env) else "no"])
    click.echo(_table(rows))


def _open(name: str, root: Path | None):
    from maskgen.datasets.registry import open_dataset

    try:
        return open_dataset(name, root)
    except DatasetRootError as err:
        raise click.ClickException(str(err)) from err
    except DatasetError as err:
        raise click.BadParameter(str(err), param_hint="NAME") from err


@datasets.command("show")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Root of this dataset, the folder its owners ship (default: the manifest's "
                   "environment variable); for NAME phantom, the `maskgen phantom --out` folder.")
@click.option("--all-problems", is_flag=True, help=f"List every problem (default: first {MAX_PROBLEMS}).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write FILE.png: frames spread over the dataset with their ground-truth masks.")
@click.option("--preview-frames", type=click.IntRange(min=1), default=12, show_default=True,
              help="Frames on the preview.")
def show(name: str, root: Path | None, all_problems: bool, as_json: bool, preview: Path | None,
         preview_frames: int) -> None:
    """What the reader finds under the root: frames, labelled frames, groups, classes, problems.

    NAME ``phantom`` summarises every ROOT/<dataset>/ folder of a phantom in one table.
    """
    if name == "phantom":
        readers = _show_phantom(root)
        _preview(readers, preview, preview_frames)
        return
    reader = _open(name, root)
    summary = reader.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        if summary["frames"]:
            _preview([reader], preview, preview_frames)
        return
    spec = reader.spec
    click.echo(f"{spec.name}: {spec.title}")
    click.echo(f"  root            {summary['root']}")
    click.echo(f"  layout          {summary['layout']}")
    click.echo(f"  frames          {summary['frames']} (from {summary['sources']} files)")
    click.echo(f"  labelled frames {summary['labelled_frames']}"
               + (f"  labels {spec.labels}" if spec.labels else ""))
    click.echo(f"  groups          {summary['groups']} (group = {spec.group_key})")
    if spec.classes:
        counts = ", ".join(f"{c}={summary['classes'].get(c, 0)}" for c in spec.classes.values())
        unlabelled = summary["frames"] - sum(summary["classes"].values())
        click.echo(f"  classes         {counts}" + (f", no class={unlabelled}" if unlabelled else ""))
    click.echo(f"  splits          {', '.join(f'{k}={v}' for k, v in summary['splits'].items())}")
    if summary["excluded"]:
        click.echo(f"  excluded        {len(summary['excluded'])} file(s) by protocol "
                   f"(e.g. {summary['excluded'][0][0]}: {summary['excluded'][0][1]})")
    problems = summary["problems"]
    click.echo(f"  problems        {len(problems)}")
    for path, reason in problems if all_problems else problems[:MAX_PROBLEMS]:
        click.echo(f"    {path}: {reason}")
    if len(problems) > MAX_PROBLEMS and not all_problems:
        click.echo(f"    ... {len(problems) - MAX_PROBLEMS} more (--all-problems)")
    if summary["frames"] == 0:
        raise click.ClickException(f"no frames found for '{name}' under {reader.root}")
    _preview([reader], preview, preview_frames)


def _preview(readers: list, out: Path | None, frames: int) -> None:
    if out is None:
        return
    from maskgen.datasets.preview import dataset_preview

    click.echo(f"preview: {dataset_preview(readers, out, n=frames)}")


def _show_phantom(root: Path | None) -> list:
    """Print the phantom table; returns the readers of the datasets found."""
    from maskgen.datasets.registry import dataset_names, get_spec, resolve_root

    base = resolve_root(get_spec("phantom"), root) if root is None else Path(root)
    if not base.is_dir():
        raise click.ClickException(f"phantom root {base} does not exist; "
                                   "make one with: maskgen phantom --out DIR")
    rows = [["dataset", "layout", "frames", "labelled", "groups", "classes", "problems"]]
    missing, readers = [], []
    for name in dataset_names():
        try:
            reader = _open(name, base / name)
            summary = reader.summary()
            readers.append(reader)
        except click.ClickException:
            missing.append(name)
            rows.append([name, "MISSING", "-", "-", "-", "-", "-"])
            continue
        classes = ",".join(f"{c}={n}" for c, n in summary["classes"].items()) or "-"
        rows.append([name, summary["layout"], str(summary["frames"]), str(summary["labelled_frames"]),
                     str(summary["groups"]), classes, str(len(summary["problems"]))])
    click.echo(_table(rows))
    if missing:
        raise click.ClickException(f"no readable {', '.join(missing)} under {base}")
    return readers


@datasets.command("folds")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Root of this dataset, the folder its owners ship (default: the manifest's "
                   "environment variable); for NAME phantom, the `maskgen phantom --out` folder.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="FILE.parquet (+ FILE.json).")
@click.option("--k", type=click.IntRange(min=2), default=5, show_default=True, help="Number of folds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the assignment of groups to folds.")
@click.option("--labelled-only", is_flag=True, help="Only frames with a mask.")
def folds_cmd(name: str, root: Path | None, out: Path, k: int, seed: int, labelled_only: bool) -> None:
    """Grouped (class-stratified where classes exist) k-fold file of a dataset."""
    from maskgen.datasets.folds import grouped_kfold, write_folds

    reader = _open(name, root)
    refs = [r for r in reader.refs() if r.has_mask or not labelled_only]
    if reader.spec.classes:
        refs = [r for r in refs if r.label is not None]
    labels = [r.label for r in refs] if reader.spec.classes else None
    try:
        folds = grouped_kfold([r.group for r in refs], k=k, seed=seed, labels=labels)
    except ValueError as err:
        raise click.ClickException(f"{name}: {err}") from err
    meta = {"dataset": name, "root": str(reader.root), "layout": reader.layout, "k": k, "seed": seed,
            "stratified": labels is not None, "labelled_only": labelled_only,
            "group_key": reader.spec.group_key}
    write_folds(out, refs, folds, meta)
    click.echo(f"{out}: {len(refs)} frames, {len({r.group for r in refs})} groups, {k} folds")
