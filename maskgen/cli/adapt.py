"""``maskgen adapt``: one-time LP-SAM adaptation (phase 1 adapters, phase 2 latent prompts)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import click

from maskgen.cli.options import StrictCommand, config_option, write_config

DEFAULT_PHANTOM = "runs/demo/phantom"
PHANTOM_DATASETS = ("camus", "ddti", "tg3k")


def _refuse_downstream(datasets: tuple[str, ...], allow: bool) -> None:
    """Adapting LP-SAM on a downstream evaluation dataset leaks that benchmark into the masks."""
    from maskgen.datasets.frames import DatasetError
    from maskgen.datasets.registry import get_spec

    for name in datasets:
        try:
            spec = get_spec(name)
        except DatasetError as err:
            raise click.BadParameter(str(err), param_hint="--dataset") from err
        if spec.is_downstream and not allow:
            raise click.BadParameter(
                f"{name} is a downstream evaluation dataset (role: {spec.role}); adapting LP-SAM on it "
                "leaks the benchmark into the masks. Adapt on camus, ddti or tg3k, or pass "
                "--allow-downstream if that is what you mean", param_hint="--dataset")


def _sources(datasets: tuple[str, ...], roots: tuple[str, ...], phantom: str) -> list[tuple[str, str | None]]:
    if not datasets:
        if roots:
            raise click.BadParameter("--root needs a --dataset before it", param_hint="--root")
        base = Path(phantom)
        if not base.exists():
            raise click.BadParameter(f"{phantom} does not exist; create it with `maskgen phantom --out {phantom}` "
                                     "or pass --dataset NAME --root DIR", param_hint="--phantom")
        return [(name, str(base / name)) for name in PHANTOM_DATASETS]
    if roots and len(roots) != len(datasets):
        raise click.BadParameter(f"{len(roots)} --root for {len(datasets)} --dataset; give one --root per "
                                 "--dataset, or none to use the manifests' environment variables",
                                 param_hint="--root")
    return list(zip(datasets, roots or (None,) * len(datasets), strict=True))


def _model_config(model_name: str, detail_channels: int | None, detail_scale: str | None,
                  detail_levels: int | None = None, decoder_dim: int | None = None,
                  encoder_dim: int | None = None):
    """The registered config of ``model_name`` with the detail and width options that were given."""
    from dataclasses import replace

    from maskgen.lpsam.config import get_config, with_decoder_dim, with_encoder_dim

    config = get_config(model_name)
    for hint, width, widen in (("--encoder-dim", encoder_dim, with_encoder_dim),
                               ("--decoder-dim", decoder_dim, with_decoder_dim)):
        if width is not None:
            try:
                config = widen(config, width)
            except ValueError as err:
                raise click.BadParameter(str(err), param_hint=hint) from err
    if detail_channels is not None:
        config = replace(config, detail_channels=detail_channels,
                         detail_scale=config.detail_scale if detail_channels else 1,
                         detail_levels=config.detail_levels if detail_channels else 1)
    try:
        config = replace(config, detail_scale=int(detail_scale)) if detail_scale else config
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--detail-scale") from err
    try:
        return replace(config, detail_levels=detail_levels) if detail_levels else config
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--detail-levels") from err


def _print_params(model_name: str, config, datasets: tuple[str, ...]) -> None:
    """Parameter counts of ``config`` (the model ``model_name`` with the CLI's options) for ``datasets``."""
    import torch

    from maskgen.datasets.registry import get_spec
    from maskgen.lpsam.adapt import format_counts
    from maskgen.lpsam.model import build_lpsam, parameter_counts
    from maskgen.lpsam.train import phase_trainable_counts

    classes = sum(len(get_spec(name).labels) for name in datasets)
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = build_lpsam(config, classes)
    click.echo(f"LP-SAM {model_name} with {classes} anatomy classes ({', '.join(datasets)}):\n{format_counts(parameter_counts(model))}")
    train_base = config.sam_variant is None  # no SAM weights: phase 1 trains all
    click.echo("trainable:\n" + format_counts(phase_trainable_counts(model, train_base)))


@click.command("adapt", cls=StrictCommand)
@config_option
@click.option("--out", type=click.Path(file_okay=False), help="Adaptation folder (ADAPT_DIR); required.")
@click.option("--dataset", "datasets", multiple=True, help="Adaptation dataset (repeat): camus, ddti, tg3k, ...")
@click.option("--root", "roots", multiple=True, type=click.Path(file_okay=False),
              help="Root of each --dataset, in order (the folder its owners ship; default: the "
                   "datasets' environment variables).")
@click.option("--allow-downstream", is_flag=True,
              help="Allow a --dataset whose registry role is downstream evaluation (leaks that benchmark).")
@click.option("--phantom", default=DEFAULT_PHANTOM, show_default=True, type=click.Path(),
              help="Without --dataset: adapt on this phantom's camus, ddti and tg3k.")
@click.option("--sam-checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Official SAM checkpoint (e.g. sam_vit_b_01ec64.pth) to start from.")
@click.option("--model", "model_name", type=click.Choice(["tiny", "vit_b", "vit_l", "vit_h"]),
              help="Model size [default: vit_b with --sam-checkpoint, else tiny].")
@click.option("--detail-channels", type=click.IntRange(min=0),
              help="Width of the detail branch: a small CNN on the frame whose features, at the mask "
                   "resolution, are added to the decoder's upscaled embedding (trained in phase 1); "
                   "0 for none [tiny 16, ViT 0]. Structures thinner than a patch (the myocardium) "
                   "need it (docs/lpsam.md).")
@click.option("--detail-scale", type=click.Choice(["1", "2", "4"]),
              help="With a detail branch: enlarge the decoder's upscaled embedding by this factor "
                   "before the detail features are added, so the mask logits are 4 x grid x this a "
                   "side [tiny 2, ViT 1].")
@click.option("--detail-levels", type=click.IntRange(min=1),
              help="With a detail branch: its resolution levels; above 1 a small feature pyramid "
                   "(each level half the resolution, twice the width) brought back to the mask "
                   "resolution, so each mask pixel sees the texture around it [1]. Measured at 3 "
                   "(three seeds): no better on the nodule, worse on unseen data (docs/lpsam.md).")
@click.option("--decoder-dim", type=click.IntRange(min=8),
              help="tiny only: width of the mask decoder and latent prompt engine (SAM's transformer_dim; "
                   "their MLPs 4x this, the encoder's neck projects to it) [64]. Measured at 128 with "
                   "--lr1 1e-3 --lr2 1e-3 (three seeds): better myocardium and unseen sets, no better "
                   "nodule, worse on the real DDTI frame (docs/lpsam.md).")
@click.option("--encoder-dim", type=click.IntRange(min=8),
              help="tiny only: width of the ViT image encoder (its embed_dim; heads and depth unchanged, "
                   "the adapters a quarter of it) [64]. Measured at 128 with --lr1 1e-3 (three seeds): "
                   "no better nodule or unseen sets, worse on the real DDTI frame (docs/lpsam.md).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--steps1", type=int, help="Phase-1 steps [tiny 3200, ViT 4000].")
@click.option("--steps2", type=int, help="Phase-2 steps [tiny 2400, ViT 4000].")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Labelled frames per step.")
@click.option("--lr1", type=float, help="Phase-1 learning rate [tiny 2e-3, ViT 1e-4].")
@click.option("--lr2", type=float, help="Phase-2 learning rate [tiny 2e-3, ViT 1e-4].")
@click.option("--dice-weight", default=0.8, show_default=True, type=float,
              help="a in the loss (1-a) BCE + a Dice.")
@click.option("--iou-weight", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the mask-quality (IoU) regression; SAM's IoU head is trained with it in both "
                   "phases, so the store's scores are learned. 0 drops the term and leaves the head as it is.")
@click.option("--train-decoder/--frozen-decoder", default=True, show_default=True,
              help="Phase 2 also trains SAM's mask decoder, as the authors' code does (+4.06 M trainable "
                   "parameters for vit_b), with phase 1's GT prompts replayed (--prompt-replay). "
                   "--frozen-decoder is the former default (only the latent prompt engine and the IoU head "
                   "learn in phase 2); measured against it in docs/lpsam.md.")
@click.option("--prompt-replay", type=click.FloatRange(min=0),
              help="With --train-decoder: phase 2 adds phase 1's loss (GT box/point prompts on the same "
                   "frames) with this weight, so the decoder that learns the latent tokens keeps following "
                   "the prompts of the box proposals; 0 trains the decoder on the latent tokens alone. "
                   "[default: 1 with --train-decoder, 0 with --frozen-decoder]")
@click.option("--balanced-bce/--plain-bce", default=True, show_default=True,
              help="Phase 2: the BCE term weighs each mask's foreground and background half each, a pull "
                   "toward the structure where the Dice term is flat (a latent token on the wrong structure). "
                   "--plain-bce gives masks of the adaptation's own anatomy that are not larger than their "
                   "structure (every class >= 0.80 Dice on other patients over three seeds of the full-scale "
                   "phantom) but did worse on the one genuine DDTI frame; docs/lpsam.md.")
@click.option("--frame-weighted/--mask-weighted", default=False, show_default=True,
              help="Phase 2: average each frame's masks before the frames, so every dataset pulls alike "
                   "however many classes it labels (with --mask-weighted a CAMUS frame's three classes pull "
                   "three times as hard as a DDTI frame's one nodule). Measured on the full-scale phantom: it moves "
                   "Dice from the myocardium to the nodule and did worse on the genuine DDTI frame in two seeds of "
                   "three; docs/lpsam.md.")
@click.option("--train-detail/--frozen-detail", default=False, show_default=True,
              help="Phase 2 also trains the detail branch (tiny; trained in phase 1 with the adapters), "
                   "with the mask decoder it feeds. Measured with --frame-weighted: only one seed's myocardium "
                   "gained more than 0.002 (0.792 -> 0.803); docs/lpsam.md.")
@click.option("--held-out", default=0.2, show_default=True, type=float,
              help="Grouped held-out share of each dataset (evaluated, never trained on).")
@click.option("--max-frames", type=int, help="At most N labelled frames per dataset (deterministic sample).")
@click.option("--checkpoint-every", default=50, show_default=True, type=int, help="Steps between resume checkpoints.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Domain randomisation of training batches (probe geometry, depth, gain, speckle, blur): "
                   "with it, LP-SAM's best-of-K Dice on phantom datasets the adaptation never saw rose by "
                   "0.04-0.17 at seeds 0 and 1 (docs/store.md); --no-augment for the former recipe.")
@click.option("--paste", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Copy-paste: the share of training frames that receive a labelled structure of another "
                   "frame (of a class their dataset does not label) at a random place; 0 for the former "
                   "recipe. It is what makes the masks transfer to breast lesions on every seed (docs/store.md).")
@click.option("--paste-phase2/--no-paste-phase2", default=True, show_default=True,
              help="Copy-paste in phase 2 (the latent class tokens) as well as in phase 1 (the prompted "
                   "decoder); --no-paste-phase2 pastes in phase 1 only (measured alike: docs/store.md).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seeds the held-out split, the weights of new modules and the batch order.")
@click.option("--threads", type=int, help="torch CPU threads (default: torch's choice).")
@click.option("--print-params", is_flag=True, help="Print the trainable parameter counts and exit.")
def adapt(out, datasets, roots, allow_downstream, phantom, sam_checkpoint, model_name, detail_channels, detail_scale, detail_levels,
          decoder_dim, encoder_dim, device,
          steps1, steps2,
          batch_size, lr1, lr2, dice_weight, iou_weight, train_decoder, prompt_replay, balanced_bce, frame_weighted, train_detail, held_out, max_frames, checkpoint_every, augment, paste, paste_phase2,
          seed, threads, print_params):
    """One-time LP-SAM adaptation: phase 1 (adapters + conv branch, GT prompts), phase 2 (latent
    prompt engine), then Dice/IoU per anatomy class on grouped held-out pairs (report.md).

    A rerun with the same options continues from the per-phase checkpoints in OUT/checkpoints.
    Writes OUT/config.toml (replay it with --config OUT/config.toml).
    """
    model_name = model_name or ("vit_b" if sam_checkpoint else "tiny")
    config = _model_config(model_name, detail_channels, detail_scale, detail_levels, decoder_dim,
                           encoder_dim)  # bad options fail first
    if print_params:
        _print_params(model_name, config, datasets or PHANTOM_DATASETS)
        return
    if not out:
        raise click.UsageError("Missing option '--out' (the adaptation folder).")
    if model_name == "tiny" and sam_checkpoint:
        raise click.BadParameter("tiny has no official SAM checkpoint; use --model vit_b/vit_l/vit_h",
                                 param_hint="--sam-checkpoint")
    if not 0 < held_out < 1:
        raise click.BadParameter(f"{held_out} must lie strictly between 0 and 1", param_hint="--held-out")
    if train_detail and not config.detail_channels:
        raise click.BadParameter(f"{model_name} has no detail branch here (--detail-channels 0)",
                                 param_hint="--train-detail")
    if prompt_replay is None:
        prompt_replay = 1.0 if train_decoder else 0.0
    if prompt_replay > 0 and not train_decoder:
        raise click.BadParameter("replays GT prompts to the mask decoder: it needs --train-decoder",
                                 param_hint="--prompt-replay")
    _refuse_downstream(datasets, allow_downstream)
    from dataclasses import replace

    import torch

    from maskgen.common.devices import resolve_device
    from maskgen.common.provenance import write_run_info
    from maskgen.lpsam.adapt import adapt as run_adapt
    from maskgen.lpsam.augment import NO_AUGMENT, AugmentConfig
    from maskgen.lpsam.config import phase_defaults
    from maskgen.lpsam.data import load_pairs
    from maskgen.lpsam.train import PhaseSettings

    if threads:
        torch.set_num_threads(threads)
    logging.getLogger("maskgen").setLevel(min(logging.getLogger("maskgen").getEffectiveLevel(), logging.INFO))
    sources = _sources(datasets, roots, phantom)
    budget = phase_defaults(model_name)
    try:
        dev = resolve_device(device)
        common = {"batch_size": batch_size, "dice_weight": dice_weight, "iou_weight": iou_weight,
                  "checkpoint_every": checkpoint_every, "seed": seed}
        randomise = AugmentConfig() if augment else NO_AUGMENT
        phase1 = PhaseSettings(steps1 if steps1 is not None else budget.steps1, lr1 or budget.lr1,
                               augment=replace(randomise, paste=paste), **common)
        phase2 = PhaseSettings(steps2 if steps2 is not None else budget.steps2, lr2 or budget.lr2,
                               train_decoder=train_decoder, prompt_replay=prompt_replay, balanced_bce=balanced_bce,
                               frame_weighted=frame_weighted, train_detail=train_detail,
                               augment=replace(randomise, paste=paste if paste_phase2 else 0.0), **common)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    where = ", ".join(f"{n} ({r or 'root from env'})" for n, r in sources)
    click.echo(f"LP-SAM {model_name} on {where}, device {dev}")
    from maskgen.datasets.frames import DatasetError

    try:
        pairs = load_pairs(sources, config.input_size, held_out, seed, max_frames)
    except (DatasetError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{len(pairs)} labelled frames, {len(pairs.problems)} skipped; classes: "
               + ", ".join(c.name for c in pairs.classes))
    resolved = {"out": out, "sources": sources, "model": config.to_dict(), "sam_checkpoint": sam_checkpoint,
                "device": str(dev), "phase1": asdict(phase1), "phase2": asdict(phase2), "held_out": held_out,
                "max_frames": max_frames}
    from maskgen.cli.options import describe_os_error, locked_output
    from maskgen.lpsam.checkpoint import CheckpointKeyError

    try:
        with locked_output(out, "maskgen adapt"):
            write_config(out, exclude=("print_params",))
            report = run_adapt(Path(out), pairs, config, phase1, phase2, dev,
                               Path(sam_checkpoint) if sam_checkpoint else None, seed)
            write_run_info(out, resolved, seed, data=pairs.summary(), weights_sha256=report["weights_sha256"],
                           base_checkpoint=report["base_checkpoint"])
    except (ValueError, CheckpointKeyError) as err:  # bad SAM weights (maskgen.common.weightfiles), key mismatches
        raise click.ClickException(err.args[0] if isinstance(err, KeyError) else str(err)) from err
    except OSError as err:
        raise click.ClickException(describe_os_error(err, out)) from err
    p = report["params"]
    click.echo(f"trainable parameters: phase 1 {report['phases']['phase1']['trainable_params']:,} "
               f"(adapter + conv branch {p['phase1_adapter']:,}), phase 2 "
               f"{report['phases']['phase2']['trainable_params']:,} (LPE {p['phase2_lpe']:,}"
               + (" + mask decoder" if phase2.train_decoder else " + IoU head" if phase2.iou_weight > 0 else "") + ")")
    from maskgen.lpsam.report import collapse_warnings, prompted_dice

    held_groups = {c.name: report["data"]["datasets"][c.dataset].get("held_out_groups") for c in pairs.classes}
    for name, r in report["heldout"]["latent"].items():
        dice = "n/a" if r["dice_mean"] is None else f"{r['dice_mean']:.3f}"
        iou = "n/a" if r["iou_mean"] is None else f"{r['iou_mean']:.3f}"
        groups = held_groups.get(name)
        train = report["training_fit"][name]["dice_mean"]
        click.echo(f"  held-out {name:<28} Dice {dice}  IoU {iou}  ({prompted_dice(report['heldout'], name)}; "
                   f"training frames {'n/a' if train is None else f'{train:.3f}'})  ({r['frames']} frames"
                   + ("" if groups is None else f" from {groups} groups") + ")")
    for warning in collapse_warnings(report["heldout"]):
        click.echo(f"WARNING: {warning}", err=True)
    click.echo(f"wrote {Path(out) / 'lpsam.safetensors'} and {Path(out) / 'report.md'}")
