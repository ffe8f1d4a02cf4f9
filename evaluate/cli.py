"""``evaluate``: the six-task downstream benchmark (``evaluate sweep``, ``evaluate report``)."""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

import click

from maskgen.cli.options import StrictGroup, config_option, version_option, write_config
from maskgen.common.logs import setup_logging
from pretrain.archs import DEFAULT_ARCH

log = logging.getLogger(__name__)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise click.BadParameter(f"{value!r} must be NAME=VALUE", param_hint=option)
        out[name] = rest
    return out


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as err:
        raise click.BadParameter(f"{text!r} is not a comma list of integers", param_hint="--seeds") from err
    if not seeds or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{text!r}: give distinct seeds, e.g. 0,1,2", param_hint="--seeds")
    return seeds


@click.group(cls=StrictGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@version_option
def main(verbose: int) -> None:
    """The ANAUS downstream benchmark: six tasks, grouped 5-fold CV, statistics, report.

    \b
      evaluate sweep --root runs/demo/phantom --out runs/eval --checkpoint anaus=backbone.safetensors
      evaluate sweep --root DIR --out OUT --ablations --store runs/store     (trains the controls)
      evaluate report OUT                                                     (rebuild report.md)
    """
    setup_logging(verbose)


@main.command()
@config_option
@click.option("--root", "--datasets-dir", "root", type=click.Path(file_okay=False, path_type=Path),
              help="The folder that holds one sub-folder per dataset, ROOT/<dataset>/ (e.g. the "
                   "phantom), unlike `maskgen run --root`, which is one dataset's folder. Without it "
                   "each dataset's environment variable from the registry is used.")
@click.option("--dataset-root", multiple=True, metavar="NAME=DIR",
              help="Root of one dataset (overrides --root), e.g. busi=/data/Dataset_BUSI_with_GT/..")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="OUT_DIR for cells, folds, backbones, report.md (an existing sweep is resumed).")
@click.option("--tasks", default=None, help="Comma list of tasks or datasets "
              "(pocus-cls, busi-cls, udiat-seg, tn3k-seg, busi-seg, hmcqu-seg); default all six.")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="NAME=FILE",
              help="A backbone to evaluate (repeatable): our pretrain export, or a timm/torchvision "
                   "ResNet state dict (.safetensors or .pth). imagenet=FILE for ImageNet weights.")
@click.option("--arch", default=None, help="ResNet of the random reference (and a check on the "
              "checkpoints); default: inferred from the first checkpoint, else resnet18.")
@click.option("--profile", "profile_name", type=click.Choice(["quick", "study", "full"]), default="quick",
              show_default=True, help="quick: CPU minutes on the phantom; study: quick's protocol with a "
              "longer pre-training for --ablations; full: the paper's protocol.")
@click.option("--protocols", default=None, metavar="LIST",
              help="Comma list of protocols (finetune, linear, frozen, low-label); default: all four "
                   "(linear: classification tasks, frozen: segmentation tasks).")
@click.option("--label-fraction", type=float, default=None,
              help="Share of the training folds' groups kept by the low-label protocol (default 0.1).")
@click.option("--pretrain-seed", type=int, default=0, show_default=True,
              help="Seed of --ablations' pre-training and of the random reference (the step-0 "
                   "weights of `pretrain run --seed` with that seed).")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20),
              help="Cross-validation folds, grouped by patient / video / recording where known.")
@click.option("--seeds", default="0", show_default=True, help="Comma list of fine-tuning seeds.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda[:N]; with --workers N on GPUs, worker i takes the i-th GPU.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Cells (and --ablations pre-trainings) run at a time, each in its own process (CPU: one per core or two; "
                   "GPUs: one per GPU, worker i on device i).")
@click.option("--threads", type=click.IntRange(1, 512), default=None,
              help="CPU threads for torch per worker (default: half the cores shared among the "
                   "workers, at least 1; on a busy 2-core machine 2 threads ran 10x slower than 1).")
@click.option("--ablations", is_flag=True, help="Train (via `pretrain run`) and evaluate the full "
              "method and its controls (grid masks, lambda_ctx 0) that are missing in OUT/backbones.")
@click.option("--store", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Mask store (`maskgen run --out`) that --ablations pre-trains on.")
@click.option("--oracle-store", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="With --ablations: also pre-train the full method on this store of ground-truth "
                   "masks of the same frames (`maskgen oracle`), as 'anaus-oracle', same budget and seed.")
@click.option("--pretrain-args", default=None, metavar="'OPTIONS'",
              help="`pretrain run` options for --ablations, one quoted string (replaces the "
                   "profile's), e.g. '--epochs 50 --batch-size 64'. Match the full method's run.")
@click.option("--resolution", type=int, default=None, help="Override the profile's input size.")
@click.option("--epochs", type=int, default=None, help="Override classification and segmentation epochs.")
@click.option("--max-frames", type=int, default=None, help="Override frames per task (0 = all).")
@click.option("--batch-size", type=int, default=None,
              help="Override the profile's fine-tuning batch size (frames per step; quick 8, full 32).")
@click.option("--seg-head", type=click.Choice(["maskrcnn", "fpn"]), default=None,
              help="Override the segmentation head (full: maskrcnn, quick: fpn).")
@click.option("--min-steps", type=click.IntRange(min=0), default=None,
              help="Override the floor on fine-tuning optimiser steps (quick/study 120, full 0 = one "
                   "pass per epoch): a small training split is reshuffled within an epoch until the "
                   "epochs add up to this many steps.")
def sweep(root, dataset_root, out_dir, tasks, checkpoints, arch, profile_name, protocols, label_fraction,
          pretrain_seed, folds, seeds, device, workers, threads, ablations, store, oracle_store, pretrain_args,
          resolution, epochs, max_frames, batch_size, seg_head, min_steps):
    """Fine-tune every backbone on every task and fold; write OUT/report.md.

    Exits with status 1 when any task or cell failed (the report says which and why); a rerun
    retries them. Writes OUT/config.toml (replay it with --config OUT/config.toml). One sweep
    writes OUT at a time (a second one is refused, exit 75).
    """
    from maskgen.cli.options import describe_os_error, locked_output

    with locked_output(out_dir, "evaluate sweep"):
        try:
            _sweep(root, dataset_root, out_dir, tasks, checkpoints, arch, profile_name, protocols, label_fraction,
                   pretrain_seed, folds, seeds, device, workers, threads, ablations, store, oracle_store,
                   pretrain_args, resolution, epochs, max_frames, batch_size, seg_head, min_steps)
        except OSError as err:
            raise click.ClickException(describe_os_error(err, str(out_dir))) from err


def _sweep(root, dataset_root, out_dir, tasks, checkpoints, arch, profile_name, protocols, label_fraction,
           pretrain_seed, folds, seeds, device, workers, threads, ablations, store, oracle_store, pretrain_args,
           resolution, epochs, max_frames, batch_size, seg_head, min_steps):
    from evaluate.ablations import ABLATIONS, FULL_METHOD, ORACLE, PretrainError, ensure_ablations
    from evaluate.backbones import (
        CheckpointError,
        load_backbone,
        parse_checkpoint_option,
        random_backbone,
    )
    from evaluate.profiles import build_profile
    from evaluate.protocols import parse_protocols
    from evaluate.sweep import SweepPlan, run_sweep
    from evaluate.tasks import resolve_tasks
    from maskgen.common.devices import check_slots, slot_devices

    seed_list = _seeds(seeds)  # every option is checked before any training starts
    try:
        profile = build_profile(profile_name, resolution=resolution, cls_epochs=epochs, seg_epochs=epochs,
                                max_frames=max_frames, batch_size=batch_size, seg_head=seg_head,
                                min_steps=min_steps, protocols=parse_protocols(protocols) if protocols else None,
                                label_fraction=label_fraction,
                                pretrain_args=tuple(shlex.split(pretrain_args)) if pretrain_args else None)
        task_specs = resolve_tasks(tasks)
        named = [parse_checkpoint_option(c) for c in checkpoints]
        torch_device = check_slots(device, workers, "--workers")  # before anything is written
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    if len({n for n, _ in named}) != len(named):
        raise click.UsageError("--checkpoint names must be distinct")
    if ablations and store is None:
        raise click.UsageError("--ablations needs --store STORE (the mask store pre-training reads)")
    if oracle_store is not None and not ablations:
        raise click.UsageError("--oracle-store needs --ablations (it is one of the pre-trainings they train)")
    if ablations:
        check_ablation_args(store, profile.pretrain_args)
    pairs = _pairs(dataset_root, "--dataset-root")
    import torch

    threads = threads or max(1, (os.cpu_count() or 2) // 2 // workers)
    torch.set_num_threads(threads)
    try:  # the user's checkpoints are checked before anything is trained or written
        backbones = [load_backbone(n, p, arch) for n, p in named]
    except CheckpointError as err:
        raise click.UsageError(str(err)) from err
    write_config(out_dir)
    ablation_names: tuple[str, ...] = ()
    if ablations:
        try:
            exported = ensure_ablations(store, out_dir, profile.pretrain_args, seed=pretrain_seed, device=device,
                                        skip=tuple(n for n, _ in named), workers=workers,
                                        devices=slot_devices(device, workers, "--workers"), threads=threads,
                                        oracle_store=oracle_store)
            backbones += [load_backbone(n, p, arch) for n, p in exported.items()]
        except (PretrainError, CheckpointError) as err:
            raise click.ClickException(str(err)) from err
        ablation_names = tuple(n for n in (*ABLATIONS, ORACLE) if n != FULL_METHOD and n in exported)
    widths = [b.fpn_channels for b in backbones if b.fpn is not None]
    try:
        reference = random_backbone(arch or (backbones[0].arch if backbones else DEFAULT_ARCH), pretrain_seed,
                                    widths[0] if widths else profile.seg_fpn_channels)
    except CheckpointError as err:
        raise click.UsageError(str(err)) from err
    backbones = [reference, *backbones]
    roots = {t.dataset: (root / t.dataset if root else None) for t in task_specs}
    roots.update({k: Path(v) for k, v in pairs.items()})
    names = [b.name for b in backbones]
    plan = SweepPlan(tasks=tuple(t.name for t in task_specs), methods=tuple(names), seeds=seed_list,
                     folds=folds, profile=profile,
                     full_method=FULL_METHOD if FULL_METHOD in names else None,
                     ablations=tuple(a for a in ablation_names if a in names))
    click.echo(f"evaluate sweep: {len(task_specs)} tasks x {len(names)} methods ({', '.join(names)}) "
               f"x {len(plan.seeds)} seeds x {folds} folds, profile {profile.name}, device {torch_device}, "
               f"{workers} worker(s) x {threads} thread(s); protocols {', '.join(profile.protocols)}")
    report = run_sweep(out_dir, task_specs, backbones, plan, roots, torch_device, workers=workers,
                       threads=threads)
    failed = _failed_tasks(out_dir, plan.tasks)
    for task, error in failed.items():
        click.echo(f"warning: task {task} not evaluated: {error}", err=True)
    cells = _failed_cells(out_dir, plan, skip=tuple(failed))
    click.echo(f"report: {report}")
    if failed or cells:
        click.echo(f"evaluate sweep: {len(failed)} of {len(plan.tasks)} task(s) not evaluated, {cells} cell(s) "
                   f"failed (reasons in {report}); rerun the same command to retry them", err=True)
        raise SystemExit(1)


def _failed_tasks(out_dir: Path, tasks: tuple[str, ...]) -> dict[str, str]:
    import json

    failed = {}
    for task in tasks:
        info = json.loads((out_dir / "tasks" / f"{task}.json").read_text())
        if info.get("status") != "ok":
            failed[task] = info.get("error", "unknown error")
    return failed


def _failed_cells(out_dir: Path, plan, skip: tuple[str, ...]) -> int:
    """Cells of the plan (tasks not in ``skip``) whose record says they failed."""
    from evaluate.cells import CellKey, read_cell

    return sum((read_cell(CellKey(t, f, m, s, p), out_dir) or {}).get("status") == "failed"
               for t in plan.tasks if t not in skip for p in plan.profile.protocols for m in plan.methods
               for s in plan.seeds for f in range(plan.folds))


def check_ablation_args(store: Path, pretrain_args: tuple[str, ...]) -> None:
    """Check --pretrain-args as `pretrain run` would parse them, before anything is trained."""
    from evaluate.ablations import ABLATIONS, SWEEP_SETS
    from pretrain.cli import check_run_options

    taken = sorted({a.split("=")[0] for a in pretrain_args} & set(SWEEP_SETS))
    if taken:
        raise click.BadParameter(f"{', '.join(taken)}: set by evaluate sweep itself for every pre-training "
                                 f"({', '.join(SWEEP_SETS)}); leave it out", param_hint="--pretrain-args")
    for name, extra in ABLATIONS.items():
        try:
            check_run_options(["--store", str(store), "--out", "unused", *pretrain_args, *extra])
        except click.ClickException as err:
            raise click.BadParameter(f"`pretrain run` refuses them for {name}: {err.format_message()}",
                                     param_hint="--pretrain-args") from err
        except ValueError as err:
            raise click.BadParameter(f"`pretrain run` refuses them for {name}: {err}",
                                     param_hint="--pretrain-args") from err


@main.command()
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tasks", default=None, help="Comma list of tasks to report, or 'all' (default: the last sweep's).")
@click.option("--protocols", default=None, metavar="LIST",
              help="Comma list of protocols to report (default: the last sweep's), e.g. after sweeps "
                   "of different protocols into one OUT_DIR.")
@click.option("--seeds", default=None, metavar="LIST",
              help="Comma list of seeds to report (default: the last sweep's), e.g. after a sweep of "
                   "more seeds under some protocols than under others (make study).")
def report(out_dir, tasks, protocols, seeds):
    """Rebuild OUT_DIR/report.md (+ results, tests, figures) from the stored cells."""
    from evaluate.protocols import parse_protocols
    from evaluate.report import build_report
    from evaluate.tasks import resolve_tasks

    if not (out_dir / "sweep.json").is_file():
        raise click.ClickException(f"{out_dir} is not a sweep output folder (it has no sweep.json); "
                                   f"give the --out folder of an `evaluate sweep`")
    try:
        task_names = [t.name for t in resolve_tasks(tasks)] if tasks else None
        chosen = list(parse_protocols(protocols)) if protocols else None
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    click.echo(f"report: {build_report(out_dir, task_names, chosen, list(_seeds(seeds)) if seeds else None)}")


if __name__ == "__main__":
    main()
