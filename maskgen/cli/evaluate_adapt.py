"""``maskgen evaluate-adapt ADAPT_DIR``: an adaptation's per-class Dice on labelled frames it never
trained on (``maskgen.lpsam.testset``)."""

from __future__ import annotations

from pathlib import Path

import click

from maskgen.cli.options import StrictCommand


@click.command("evaluate-adapt", cls=StrictCommand)
@click.argument("adapt_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--phantom", type=click.Path(file_okay=False),
              help="Test on this phantom's folders of the adaptation's datasets (e.g. one made with "
                   "`maskgen phantom --seed 1`: other patients).")
@click.option("--dataset", "datasets", multiple=True, help="Test dataset (repeat), one of the adaptation's.")
@click.option("--root", "roots", multiple=True, type=click.Path(file_okay=False),
              help="Root of each --dataset, in order (default: the datasets' environment variables).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Report path without suffix; writes OUT.json and OUT.md (default: ADAPT_DIR/test).")
@click.option("--max-frames", type=click.IntRange(min=1), help="At most this many labelled frames per dataset.")
@click.option("--check-training/--no-check-training", default=True, show_default=True,
              help="Re-read the adaptation's own data (run.json) and leave out test frames with the "
                   "same pixels as a frame it trained on.")
@click.option("--figure/--no-figure", default=True, show_default=True,
              help="Also draw the best, median and worst test frame of each class to OUT_overlays.png.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads (default: torch's choice).")
def evaluate_adapt(adapt_dir, phantom, datasets, roots, out, max_frames, check_training, figure, device, threads):
    """Per-class Dice of an adaptation on labelled frames it never trained on.

    The held-out split of `maskgen adapt` is as small as its data (the quick phantom: 2 CAMUS
    patients, 8 DDTI images); this scores the latent-prompt masks (and, for reference, the
    ground-truth box prompts) on any labelled frames of the adaptation's datasets, e.g. a
    phantom with another --seed, and leaves out frames the adaptation trained on. Writes
    OUT.json, OUT.md and OUT_overlays.png (best, median and worst test frame of each class) and
    prints one line per anatomy class.
    """
    import torch

    from maskgen.common.devices import resolve_device
    from maskgen.common.files import atomic_write_json, atomic_write_text, sha256_file
    from maskgen.datasets.frames import DatasetError
    from maskgen.lpsam.artifacts import WEIGHTS, load_adapt_dir, read_meta
    from maskgen.lpsam.data import load_pairs
    from maskgen.lpsam.report import prompted_dice
    from maskgen.lpsam.testset import (
        adaptation_datasets,
        as_test_set,
        evaluate_test_set,
        render_markdown,
        training_digests,
        with_adaptation_classes,
    )

    try:
        meta = read_meta(adapt_dir)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    own = adaptation_datasets(meta)
    sources = _test_sources(own, datasets, roots, phantom)  # bad options fail before any work
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    try:
        model, meta = load_adapt_dir(adapt_dir)
        pairs = with_adaptation_classes(load_pairs(sources, model.config.input_size, 0.5, 0, max_frames), meta)
        seen, checked = set(), False
        if check_training:
            try:
                seen, checked = training_digests(adapt_dir), True
            except (DatasetError, FileNotFoundError, KeyError, ValueError) as err:
                click.echo(f"WARNING: cannot read the adaptation's own data to check for overlap ({err}); "
                           "test frames are not checked against its training frames", err=True)
    except (DatasetError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    pairs, excluded = as_test_set(pairs, seen)
    if not bool(pairs.held_out.any()):
        raise click.ClickException(f"every one of the {len(pairs)} frames is a frame the adaptation trained on")
    prefix = Path(out) if out else Path(adapt_dir) / "test"
    overlays = prefix.with_name(prefix.name + "_overlays.png") if figure else None
    result = evaluate_test_set(model.to(dev), pairs, dev, overlays=overlays)
    result.update(adapt_dir=str(adapt_dir), weights_sha256=sha256_file(Path(adapt_dir) / WEIGHTS),
                  sources=[list(s) for s in sources], excluded=excluded, checked_training=checked)
    atomic_write_json(prefix.with_suffix(".json"), result)
    atomic_write_text(prefix.with_suffix(".md"), render_markdown(result) + "\n")
    click.echo(f"{int(pairs.held_out.sum())} test frames ({excluded} left out: the adaptation trained on them)")
    datasets_of = {c["name"]: c["dataset"] for c in meta["classes"]}
    for name, r in result["heldout"]["latent"].items():
        g = result["data"]["datasets"][datasets_of[name]].get("held_out_groups")
        click.echo(f"  test {name:<28} Dice {_f3(r['dice_mean'])}  ({prompted_dice(result['heldout'], name)})"
                   f"  ({r['frames']} frames" + ("" if g is None else f" from {g} groups") + ")")
    for warning in result["warnings"]:
        click.echo(f"WARNING: {warning}", err=True)
    click.echo(f"report: {prefix.with_suffix('.md')} and {prefix.with_suffix('.json')}")


def _f3(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _test_sources(own: list[str], datasets, roots, phantom) -> list[tuple[str, str | None]]:
    """(dataset, root) pairs to test on: --dataset/--root, or the adaptation's datasets under --phantom."""
    if datasets and phantom:
        raise click.UsageError("give --phantom or --dataset/--root, not both")
    if not datasets:
        if not phantom:
            raise click.UsageError("where are the test frames? pass --phantom DIR or --dataset NAME --root DIR")
        if roots:
            raise click.BadParameter("--root needs a --dataset before it", param_hint="--root")
        missing = [name for name in own if not (Path(phantom) / name).is_dir()]
        if missing:
            raise click.BadParameter(f"{phantom} has no {', '.join(missing)} folder; make one with `maskgen "
                                     f"phantom --out {phantom} --seed 1`", param_hint="--phantom")
        return [(name, str(Path(phantom) / name)) for name in own]
    foreign = [name for name in datasets if name not in own]
    if foreign:
        raise click.BadParameter(f"{', '.join(foreign)}: the adaptation has no anatomy class of it (its datasets: "
                                 f"{', '.join(own)})", param_hint="--dataset")
    if roots and len(roots) != len(datasets):
        raise click.BadParameter(f"{len(roots)} --root for {len(datasets)} --dataset", param_hint="--root")
    return list(zip(datasets, roots or (None,) * len(datasets), strict=True))
