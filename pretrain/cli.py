"""``pretrain``: stage two of ANAUS (``pretrain run``, ``pretrain export``).

Options are converted to the frozen configs at this one boundary.
"""

from __future__ import annotations

import contextlib
import os

import click

from maskgen.cli.options import StrictGroup, config_option, version_option, write_config
from maskgen.common.logs import setup_logging
from pretrain.archs import DEFAULT_ARCH


@click.group(cls=StrictGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@version_option
def main(verbose: int) -> None:
    """Stage two of ANAUS: anatomy-anchored pre-training from the mask store.

    \b
      pretrain run --store runs/store --out runs/pretrain [--epochs N] [--batch-size N]
      pretrain export runs/pretrain --out anaus_resnet18.safetensors
      pretrain init --arch resnet18 --seed 0 --out random_resnet18.safetensors
    """
    setup_logging(max(verbose, 1))


@main.command()
@config_option
@click.option("--store", "store", required=True, type=click.Path(exists=True, file_okay=False), help="STORE written by `maskgen run`.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="RUN_DIR for checkpoints, metrics, backbone.")
@click.option("--epochs", default=300, show_default=True, type=int, help="Passes over the store's usable frames.")
@click.option("--batch-size", default=192, show_default=True, type=int, help="Frames per step per rank.")
@click.option("--resolution", default=224, show_default=True, type=int, help="View size (multiple of 32).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N] (under torchrun: LOCAL_RANK's GPU).")
@click.option("--threads", default=None, type=click.IntRange(1, 512),
              help="CPU threads for torch (default: torch's, one per core).")
@click.option("--resume", is_flag=True, help="Continue RUN_DIR/checkpoint.pt exactly.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seeds the initial weights, the data order and every view's random draws.")
@click.option("--arch", default=DEFAULT_ARCH, show_default=True, help="resnet18|34|50|101|152 (timm).")
@click.option("--recipe", default="auto", show_default=True, type=click.Choice(["auto", "paper", "small-batch"]),
              help="Optimiser recipe: paper (LARS, lr 0.3 x batch/256, trust 1e-3), small-batch (AdamW, lr "
                   "1.6e-2 x batch/256 = 1e-3 at batch 16: learns in a few hundred small steps; "
                   "benchmarks/bench_recipe.py), auto (paper from a global batch of 128 up). "
                   "--optimizer/--lr/--trust-coefficient/--weight-decay override it.")
@click.option("--optimizer", default=None, type=click.Choice(["lars", "adamw"]), help="Override the recipe's optimiser.")
@click.option("--lr", default=None, type=float, help="Base LR, scaled by global batch / 256 (recipe: 0.3). With --resume: a lower "
              "value than the checkpoint's continues with it (recorded in run.json).")
@click.option("--trust-coefficient", default=None, type=float, help="LARS trust coefficient (paper 1e-3).")
@click.option("--warmup-epochs", default=3.0, show_default=True, type=float, help="Linear warm-up, then cosine decay.")
@click.option("--weight-decay", default=None, type=float, help="Weight decay of weights, not biases/norms (recipe: 1e-6).")
@click.option("--ema-momentum", default=0.99, show_default=True, type=float, help="Start of the target momentum (cosine to 1).")
@click.option("--cache", default="auto", show_default=True, type=click.Choice(["auto", "device", "ram", "none"]),
              help="Hold the store in GPU/host memory (auto: ram when it fits).")
@click.option("--workers", "--loader-workers", "workers", default=0, show_default=True, type=int,
              help="DataLoader worker processes reading the store (cache ram/none; 0: in this process). "
                   "Not GPUs: for several GPUs use torchrun --nproc_per_node N.")
@click.option("--shuffle-buffer", default=1024, show_default=True, type=int,
              help="Frames held to shuffle within (chunk order is shuffled too).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the online network.")
@click.option("--sync-bn/--no-sync-bn", default=True, show_default=True,
              help="Multi-GPU: BatchNorm statistics over all ranks (BYOL practice).")
@click.option("--checkpoint-every", default=200, show_default=True, type=int, help="Steps between checkpoints.")
@click.option("--max-steps", default=None, type=int, help="Stop after this global step (smoke runs; schedules unchanged).")
@click.option("--mask-source", default="store", show_default=True,
              type=click.Choice(["store", "grid", "superpixel", "whole"]),
              help="store: LP-SAM anatomy; grid/superpixel: anatomy-blind controls; whole: one mask = "
                   "the whole frame (image-level, BYOL-style control).")
@click.option("--lambda-ctx", default=1.0, show_default=True, type=float, help="Weight of the prediction loss (0: ablation).")
@click.option("--temperature", default=0.1, show_default=True, type=float,
              help="InfoNCE temperature of the anatomy-separating alignment loss.")
@click.option("--scales", default=4, show_default=True, type=int, help="Pooling scales, coarsest first (1-4).")
@click.option("--k-samples", default=16, show_default=True, type=int, help="Mask ids drawn per image and scale.")
@click.option("--damage", nargs=3, default=(0.15, 0.2, 0.05), show_default=True, type=float,
              help="(a, b, g): shuffle probability per window, remap strength, in-paint probability per block.")
@click.option("--log-every", default=1, show_default=True, type=int,
              help="Steps between lines of RUN_DIR/metrics.jsonl (and TensorBoard scalars).")
@click.option("--probe", default=None, metavar="TASK[,TASK]",
              help="Online probes of the frozen backbone on labelled tasks: a classification task "
                   "(busi-cls, pocus-cls) gets a leave-one-group-out kNN, a segmentation task (busi-seg, "
                   "udiat-seg, tn3k-seg, hmcqu-seg) a dense linear (ridge) probe scored by held-out Dice.")
@click.option("--probe-root", default=None, type=click.Path(exists=True, file_okay=False),
              help="The probe dataset's folder (default: its ANAUS_<NAME>_ROOT variable).")
@click.option("--probe-every", default=25, show_default=True, type=int, help="Steps between probes (and step 0, last).")
def run(store, out, threads, resume, seed, **options):
    """Pre-train a ResNet + FPN on STORE's frames and anatomy masks.

    Writes RUN_DIR/config.toml (replay it with --config RUN_DIR/config.toml --out NEW_DIR).
    One run writes RUN_DIR at a time (a second one is refused, exit 75). With --resume, an
    explicit --lr lower than the checkpoint's continues with that rate (recorded in run.json),
    e.g. after a NaN stop.
    """
    from maskgen.cli.options import describe_os_error, locked_output
    from maskgen.store import StoreError
    from pretrain import distributed as dist
    from pretrain.checkpoint import NonFiniteStateError
    from pretrain.train import NonFiniteLossError
    from pretrain.train import run as run_training

    try:
        cfg = build_run_config(seed=seed, **options)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    main_rank = os.environ.get("RANK", "0") == "0"  # once under torchrun
    ctx = click.get_current_context()

    def started(device) -> None:  # the run's inputs are valid and RUN_DIR exists
        write_config(out, ctx, exclude=("resume",))
        click.echo(f"pretrain run: device {device}, {cfg.model.arch}, RUN_DIR {out} "
                   f"(replay: pretrain run --config {os.path.join(out, 'config.toml')})", err=True)

    try:
        # rank 0 holds RUN_DIR's lock (under torchrun the other ranks write nothing there)
        with locked_output(out, "pretrain run") if main_rank else contextlib.nullcontext():
            out_dir = run_training(store, out, cfg, seed=seed, resume=resume, on_start=started if main_rank else None,
                                   lower_lr=resume and options.get("lr") is not None)
        dist.cleanup()  # under torchrun: leave the process group together
    except (NonFiniteLossError, NonFiniteStateError, StoreError) as err:
        raise click.ClickException(str(err)) from err
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(describe_os_error(err, out)) from err
    if main_rank:
        click.echo(f"pre-trained backbone: {out_dir / 'backbone.safetensors'}")


def build_run_config(epochs, batch_size, resolution, device, seed, arch, recipe, optimizer, lr, trust_coefficient,
                     warmup_epochs, weight_decay, ema_momentum, cache, workers, shuffle_buffer, compile_, sync_bn,
                     checkpoint_every, max_steps, mask_source, lambda_ctx, temperature, scales, k_samples, damage,
                     log_every, probe, probe_root, probe_every):
    """`pretrain run`'s options -> the frozen ``RunConfig`` (raises ValueError on a bad value)."""
    from pretrain import distributed as dist
    from pretrain.corruption import CorruptionConfig
    from pretrain.loader import LoaderConfig
    from pretrain.model import ModelConfig
    from pretrain.optim import RECIPES, OptimConfig, resolve_recipe
    from pretrain.probe import ProbeConfig
    from pretrain.step import ObjectiveConfig
    from pretrain.train import RunConfig

    chosen = resolve_recipe(recipe, batch_size * dist.world_size_from_env())
    overrides = {k: v for k, v in (("optimizer", optimizer), ("base_lr", lr), ("trust_coeff", trust_coefficient),
                                   ("weight_decay", weight_decay)) if v is not None}
    a, b, g = damage
    return RunConfig(
        model=ModelConfig(arch=arch, scales=scales),
        objective=ObjectiveConfig(resolution=resolution, scales=scales, k_samples=k_samples,
                                  temperature=temperature, lambda_ctx=lambda_ctx, mask_source=mask_source,
                                  corruption=CorruptionConfig(shuffle_p=a, remap_strength=b, inpaint_p=g)),
        loader=LoaderConfig(batch_size=batch_size, seed=seed, shuffle_buffer=shuffle_buffer, cache=cache, workers=workers),
        optim=OptimConfig(epochs=epochs, warmup_epochs=warmup_epochs, ema_base=ema_momentum, recipe=chosen,
                          **{**RECIPES[chosen], **overrides}),
        device=device, compile=compile_, sync_bn=sync_bn, checkpoint_every=checkpoint_every, max_steps=max_steps,
        log_every=log_every,
        probe=ProbeConfig(task=probe, root=probe_root, every=probe_every) if probe else None)


def check_run_options(args: list[str]) -> dict:
    """Parse and check a full `pretrain run` argument list without running it (``evaluate sweep
    --ablations`` checks its ``--pretrain-args`` before any training starts).

    Raises:
        click.UsageError / click.BadParameter: an unknown option or a bad value (click's message).
        ValueError: a value the configuration refuses.
    """
    ctx = run.make_context("pretrain run", list(args))
    params = dict(ctx.params)
    for name in ("store", "out", "threads", "resume"):
        params.pop(name)
    build_run_config(**params)
    return params


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(),
              help="FILE.safetensors (+ FILE.json); with --format hf a folder.")
@click.option("--format", "fmt", default="safetensors", show_default=True, type=click.Choice(["safetensors", "hf"]),
              help="safetensors: one weights file + JSON sidecar; hf: a timm / Hugging Face Hub folder "
                   "(config.json, model.safetensors, pre-training heads, model card).")
@click.option("--results", "results", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --format hf: an `evaluate sweep` output folder whose results the model card quotes.")
@click.option("--method", default=None, help="The sweep's method name of this backbone (default: the one "
                                             "exported from RUN_DIR).")
def export(run_dir, out, fmt, results, method):
    """Export RUN_DIR's online backbone (timm/torchvision ResNet keys) + provenance sidecar, or
    with --format hf a folder that `timm.create_model("local-dir:DIR", pretrained=True)` loads."""
    if fmt != "hf" and (results or method):
        raise click.UsageError("--results and --method go with --format hf")
    try:
        if fmt == "hf":
            from pretrain.hf_export import export_run_hf

            info = export_run_hf(run_dir, out, results, method)
            click.echo(f"exported {info['arch']} backbone (step {info['step']}) as a timm / Hugging Face "
                       f"folder: {out} (config.json, model.safetensors, README.md)")
            return
        from pretrain.export import export_run

        info = export_run(run_dir, out)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"exported {info['arch']} backbone (step {info['step']}) to {out} (+ {out[:-12]}.json)")


@main.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="FILE.safetensors (+ FILE.fpn.safetensors + FILE.json).")
@click.option("--arch", default=DEFAULT_ARCH, show_default=True, help="resnet18|34|50|101|152 (timm).")
@click.option("--seed", default=0, show_default=True, type=int, help="The --seed of the pre-training it is the start of.")
def init(out, arch, seed):
    """Export the step-0 backbone + FPN of `pretrain run --arch ARCH --seed SEED`.

    This is the fair random-initialisation reference: the exact weights pre-training starts
    from (same constructor, same initialisation recipe, same seed).
    """
    from pretrain.export import export_initial
    from pretrain.model import ModelConfig

    try:
        ModelConfig(arch=arch)
        info = export_initial(out, arch, seed)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"step-0 {info['arch']} backbone (seed {seed}) to {out} (+ {info['fpn']}, {out[:-12]}.json)")


if __name__ == "__main__":
    main()
