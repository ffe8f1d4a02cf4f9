"""An adaptation's mask quality on labelled frames it never trained on (``maskgen evaluate-adapt``).

``maskgen adapt`` holds out whole groups of its own data, so its report is only as steady as the
held-out groups are many: the quick phantom holds out 2 CAMUS patients, 8 DDTI images and 12
TG3K frames, and one frame moves a class's mean by a few hundredths. This module measures the
same per-class Dice (``maskgen.lpsam.evaluate``: latent prompts, and the ground-truth box as
the decoder's bound) on any labelled frames of the adaptation's datasets, for instance a phantom
generated with another ``--seed`` (new patients, new videos) or a dataset's own test split.

A test set that overlaps the training data would flatter the adaptation, so every frame whose
pixels equal one the adaptation trained on (sha256 of the S x S frame as the model sees it) is
left out and counted. A different frame of a training patient is not caught by that: test on
other patients (another phantom seed does that by construction).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import torch

from maskgen.lpsam.data import AnatomyClass, PairSet, load_pairs
from maskgen.lpsam.evaluate import evaluate
from maskgen.lpsam.figures import ExamplePicker, heldout_overlays
from maskgen.lpsam.model import LPSAM
from maskgen.lpsam.report import (
    MEAN_INTERVAL_NOTE,
    collapse_warnings,
    prompt_comparison,
    quality_table,
)


def frame_digests(images: torch.Tensor) -> list[str]:
    """(N, S, S) uint8 frames -> N sha256 hex digests of their pixels."""
    return [hashlib.sha256(im.contiguous().numpy().tobytes()).hexdigest() for im in images]


def adaptation_pairs(adapt_dir: str | os.PathLike) -> PairSet:
    """An adaptation's own pairs with its held-out split, re-read from the sources, input size,
    held-out share, seed and frame limit its run.json records."""
    run = json.loads((Path(adapt_dir) / "run.json").read_text())
    cfg = run["config"]
    return load_pairs([tuple(s) for s in cfg["sources"]], int(cfg["model"]["input_size"]), cfg["held_out"],
                      run["seed"], cfg["max_frames"])


def training_digests(adapt_dir: str | os.PathLike) -> set[str]:
    """Digests of the frames an adaptation trained on (not its held-out ones, ``adaptation_pairs``)."""
    pairs = adaptation_pairs(adapt_dir)
    return set(frame_digests(pairs.images[pairs.indices(held_out=False)]))


def adaptation_datasets(meta: dict) -> list[str]:
    """The datasets of an adaptation's anatomy classes (``meta``: its lpsam.json), in class order."""
    return list(dict.fromkeys(c["dataset"] for c in meta["classes"]))


def with_adaptation_classes(pairs: PairSet, meta: dict) -> PairSet:
    """The test pairs with the adaptation's class list (``meta``: its lpsam.json; the model's latent
    tokens, in its order): a test on a subset of its datasets still scores token t as class t."""
    own = adaptation_datasets(meta)
    classes = [AnatomyClass(c["dataset"], int(c["label"]), c["label_name"]) for c in meta["classes"]]
    renumber = torch.tensor([own.index(d) for d in pairs.datasets], dtype=torch.int64)
    return replace(pairs, classes=classes, datasets=own, dataset_index=renumber[pairs.dataset_index])


def as_test_set(pairs: PairSet, seen: set[str]) -> tuple[PairSet, int]:
    """Every frame of ``pairs`` becomes a test frame (``held_out``) except those whose digest is in
    ``seen``; returns the test set and how many frames were left out."""
    fresh = torch.tensor([d not in seen for d in frame_digests(pairs.images)], dtype=torch.bool)
    return replace(pairs, held_out=fresh), int((~fresh).sum())


def evaluate_test_set(model: LPSAM, pairs: PairSet, device: torch.device, batch_size: int = 16,
                      overlays: Path | None = None) -> dict:
    """{"latent", "point", "box"} per-class quality on the test frames (``maskgen.lpsam.evaluate``) with
    what the test set is (``data``) and the collapse check of ``maskgen adapt``'s report; with
    ``overlays``, also the best / median / worst test frame of each class drawn to that PNG
    (``maskgen.lpsam.figures``, picked during the same latent-prompt pass) and named in ``figure``."""
    picker = ExamplePicker(pairs) if overlays is not None else None
    metrics = evaluate(model, pairs, device, batch_size, observe=picker and picker.observe)
    result = {"heldout": metrics, "data": pairs.summary(), "warnings": collapse_warnings(metrics)}
    if picker is not None:
        heldout_overlays(picker.picks(), pairs, overlays, what="Test frames")
        result["figure"] = overlays.name
    return result


def _frames(counts: dict) -> str:
    """'480 (from 20 groups)' for a dataset's test frames (``PairSet.summary``'s held-out counts)."""
    groups = counts.get("held_out_groups")
    return f"{counts['held_out']}" + ("" if groups is None else f" (from {groups} groups)")


def render_markdown(result: dict) -> str:
    """test.md: per-class Dice with latent prompts, then with the ground-truth box."""
    data = result["data"]
    excluded = result.get("excluded", 0)
    lines = [
        "# LP-SAM adaptation on labelled frames it never trained on", "",
        f"Adaptation `{result['adapt_dir']}` (weights sha256 {result['weights_sha256'][:12]}...); test data: "
        + ", ".join(f"{name} `{root}`" for name, root in result["sources"]) + ".", "",
        f"{data['frames']} labelled frames, {excluded} of them left out because the adaptation trained on "
        "the same pixels" + ("" if result.get("checked_training") else " (not checked: its data could not be read)")
        + "; test frames per dataset: "
        + ", ".join(f"{k} {_frames(v)}" for k, v in data["datasets"].items()) + ".", "",
        *[line for w in result["warnings"] for line in (f"**WARNING**: {w}", "")],
        "## Latent prompts (no prompt from a person)", "",
        f"Mean ± std over the frames whose ground truth contains the class; {MEAN_INTERVAL_NOTE}", "",
        *quality_table(result["heldout"]["latent"]), "",
        *prompt_comparison(result["heldout"]),
        "## For reference: ground-truth box prompts", "",
        *quality_table(result["heldout"]["box"]), "",
    ]
    if result.get("figure"):
        lines += ["## Pictures", "", "Test frames per anatomy class, best / median / worst Dice (latent prompts); "
                  "green: ground truth, magenta: LP-SAM.", "", f"![test overlays]({result['figure']})", ""]
    return "\n".join(lines)
