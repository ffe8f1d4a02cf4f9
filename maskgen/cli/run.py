"""``maskgen run``: LP-SAM over a dataset's frames -> STORE/masks.zarr + STORE/manifest.parquet."""

from __future__ import annotations

import os

import click

from maskgen.cli.options import (
    StrictCommand,
    config_option,
    describe_os_error,
    locked_output,
    write_config,
)
from maskgen.datasets.frames import DatasetError
from maskgen.generate.job import MaskJob, PredictorSpec, reader_spec, run_mask_job
from maskgen.generate.postprocess import PostprocessConfig
from maskgen.generate.postprocess_batched import POSTPROCESS_PATHS
from maskgen.store import StoreError
from maskgen.store.writer import StoreMismatchError

PROPOSAL_CHOICES = ("latent", "grid", "boxes", "both", "latent+boxes", "latent+grid+boxes")
DEFAULT_PROPOSALS = "latent+boxes"  # the class tokens and the box grid: docs/store.md, "Measured"
MERGE_CHOICES = ("latent-first", "score")  # maskgen.lpsam.proposals.MERGE_RULES (not imported here: slow)


def parse_fractions(value: str, option: str) -> tuple[float, ...]:
    """``"0.25,0.5"`` -> (0.25, 0.5); a clear usage error otherwise."""
    try:
        return tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions of the frame, e.g. 0.25,0.5; got {value!r}",
                                 param_hint=option) from None


@click.command("run", cls=StrictCommand)
@config_option
@click.option("--dataset", "datasets", required=True, multiple=True,
              help="Registry name of the frames (e.g. butus; see `maskgen datasets`). Repeat it to put "
                   "several datasets into one store (e.g. --dataset butus --root A --dataset camus --root B).")
@click.option("--root", "roots", type=click.Path(file_okay=False), multiple=True,
              help="Dataset root, the folder its owners ship; one per --dataset in the same order "
                   "(default: each dataset's environment variable, see `maskgen datasets`).")
@click.option("--checkpoint", "--lpsam", "adapt_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="LP-SAM adaptation folder written by `maskgen adapt --out` (a folder, not a weight file).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="STORE folder to write (or resume).")
@click.option("--k", default=16, show_default=True, help="Mask slots per frame (at most K masks are kept).")
@click.option("--batch-size", default=8, show_default=True, help="Frames per predictor call.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="dask worker processes on this machine (one per GPU: worker i on GPU i); 1 runs in this process.")
@click.option("--workers-per-gpu", default=1, show_default=True, type=click.IntRange(min=1),
              help="Workers sharing one GPU (worker i on GPU i // this); post-processing runs on the CPU, "
                   "so a few workers keep one fast GPU busier. More workers than GPUs x this is refused.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Join an existing dask cluster at this address instead (e.g. tcp://host:8786 from "
                   "dask-jobqueue on SLURM/PBS: examples/dask_jobqueue_maskgen.py).")
@click.option("--threads", default=None, type=int,
              help="torch CPU threads per worker (default: cores / workers). Equal --threads make CPU "
                   "results bitwise equal across worker counts.")
@click.option("--size", default=256, show_default=True, help="Store resolution S (LP-SAM's input size).")
@click.option("--chunk", default=64, show_default=True, help="Frames per Zarr chunk (and work unit).")
@click.option("--shard", default=None, type=int, help="Frames per Zarr shard (a multiple of --chunk); default none.")
@click.option("--mask-threshold", default=0.5, show_default=True, help="Probability threshold of a mask pixel.")
@click.option("--min-score", default=0.0, show_default=True, help="Drop tokens with a lower predicted quality.")
@click.option("--min-area", default=64, show_default=True, help="Drop components with fewer pixels (at --size).")
@click.option("--dedup-iou", default=0.8, show_default=True, help="Near-duplicate IoU (the lower score is dropped).")
@click.option("--coherent/--no-coherent", default=True, show_default=True,
              help="Coherent regions: open/close, fill holes, drop components below --min-area-frac.")
@click.option("--smooth", default=0.01, show_default=True,
              help="Opening/closing disc radius as a fraction of --size (with --coherent).")
@click.option("--min-area-frac", default=0.002, show_default=True,
              help="With --coherent, drop components below this fraction of the frame.")
@click.option("--clip-to-frame/--no-clip-to-frame", default=True, show_default=True,
              help="Clear every candidate mask outside the frame's letter-box content box (no masks "
                   "in the padding), before the other post-processing steps.")
@click.option("--proposals", type=click.Choice(PROPOSAL_CHOICES), default=DEFAULT_PROPOSALS, show_default=True,
              help="Candidates: the latent class tokens, and/or class-agnostic proposals through the adapted "
                   "decoder from a grid of point prompts (grid) or of tiled box prompts (boxes); both = "
                   "latent+grid (docs/store.md).")
@click.option("--points-per-side", default=8, show_default=True, help="Point grid n x n (with grid proposals).")
@click.option("--box-sides", default="0.25,0.375,0.5", show_default=True,
              help="Sides of the tiled box prompts as fractions of --size (with box proposals); neighbours "
                   "overlap by half a side.")
@click.option("--merge", default="latent-first", show_default=True, type=click.Choice(MERGE_CHOICES),
              help="How class-token masks and proposals share the K slots: the class masks first and "
                   "proposals in the slots left, or one ranking by predicted IoU.")
@click.option("--proposal-min-iou", default=0.5, show_default=True,
              help="Drop point- and box-grid proposals with a lower predicted IoU.")
@click.option("--proposal-min-stability", default=0.85, show_default=True,
              help="Drop point- and box-grid proposals with a lower stability score (SAM's, logit offset 1).")
@click.option("--postprocess", default="frame", show_default=True, type=click.Choice(POSTPROCESS_PATHS),
              help="Post-processing path: frame (per frame on the host, the reference) or batched (tensor "
                   "operations on the predictor's device); the store is the same either way.")
@click.option("--limit", default=None, type=int,
              help="Only the first N frames (quick runs; of several datasets, in --dataset order).")
@click.option("--overwrite", is_flag=True, help="Replace a store made with other settings.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(datasets, roots, adapt_dir, out, k, batch_size, device, workers, workers_per_gpu, scheduler, threads, size,
        chunk, shard, mask_threshold, min_score, min_area, dedup_iou, coherent, smooth, min_area_frac, clip_to_frame,
        proposals, points_per_side, box_sides, merge, proposal_min_iou, proposal_min_stability, postprocess, limit,
        overwrite, no_progress):
    """Generate up to K anatomy masks per frame with LP-SAM and write the mask store.

    Resumable: run the same command again after an interruption and it finishes the store;
    a store made with other settings is refused (see --overwrite). Writes STORE/config.toml
    (replay it with --config STORE/config.toml).
    """
    from maskgen.common.devices import resolve_device
    from maskgen.lpsam.proposals import ProposalConfig

    ctx = click.get_current_context()
    try:
        if scheduler is None:  # a joined cluster's workers resolve the device on their machines
            resolve_device(device)
        post = PostprocessConfig(k=k, mask_threshold=mask_threshold, min_score=min_score,
                                 min_area=min_area, dedup_iou=dedup_iou, coherent=coherent,
                                 smooth=smooth, min_area_frac=min_area_frac, clip_to_frame=clip_to_frame)
        candidates = ProposalConfig(mode=proposals, points_per_side=points_per_side,
                                    box_sides=parse_fractions(box_sides, "--box-sides"), merge=merge,
                                    min_iou=proposal_min_iou, min_stability=proposal_min_stability)
        # absolute paths: dask workers (possibly on other machines) resolve them the same way
        job = MaskJob(out=os.path.abspath(out),
                      reader=reader_spec(list(datasets), [os.path.abspath(r) for r in roots]),
                      predictor=PredictorSpec(os.path.abspath(adapt_dir), candidates),
                      post=post, size=size, chunk=chunk, shard=shard, batch_size=batch_size,
                      device=device, workers_per_gpu=workers_per_gpu, limit=limit,
                      postprocess=postprocess)
        with locked_output(job.out, "maskgen run"):
            summary = run_mask_job(job, workers=workers, scheduler=scheduler, overwrite=overwrite,
                                   progress=not no_progress, threads=threads,
                                   on_start=lambda: write_config(out, ctx, exclude=("overwrite", "no_progress")))
    except (ValueError, FileNotFoundError, DatasetError, StoreError, StoreMismatchError) as err:
        raise click.ClickException(str(err)) from err
    except OSError as err:
        raise click.ClickException(describe_os_error(err, out)) from err
    except KeyError as err:  # LP-SAM weights whose keys do not fit (lpsam.checkpoint.CheckpointKeyError)
        from maskgen.lpsam.checkpoint import CheckpointKeyError

        if not isinstance(err, CheckpointKeyError):
            raise
        raise click.ClickException(f"--checkpoint {adapt_dir}: {err.args[0]}") from err
    if summary.reader_problems:
        click.echo(f"{len(summary.reader_problems)} file(s) under --root are not frames (recorded in run.json), "
                   f"first: {summary.reader_problems[0][0]}: {summary.reader_problems[0][1]}")
    for line in summary.lines():
        click.echo(line)
    click.echo(f"store: {out}  (check it with `maskgen verify {out}`, look at it with `maskgen inspect {out}`)")
