"""``maskgen adapt`` without the CLI: build, (load SAM), phase 1, phase 2, evaluate, save, report."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from maskgen.common.files import sha256_file
from maskgen.lpsam.artifacts import save_adapt_dir
from maskgen.lpsam.checkpoint import load_sam_checkpoint
from maskgen.lpsam.config import LPSAMConfig
from maskgen.lpsam.data import PairSet
from maskgen.lpsam.evaluate import evaluate, training_fit
from maskgen.lpsam.figures import write_figures
from maskgen.lpsam.model import build_lpsam, parameter_counts
from maskgen.lpsam.report import collapse_warnings, write_report
from maskgen.lpsam.score_quality import evaluate_scores
from maskgen.lpsam.train import PhaseSettings, run_phase

log = logging.getLogger(__name__)


def format_counts(counts: dict[str, int]) -> str:
    """One line per part, in millions."""
    return "\n".join(f"  {name:<16} {n / 1e6:8.3f} M ({n:,})" for name, n in counts.items())


def adapt(out: Path, pairs: PairSet, config: LPSAMConfig, phase1: PhaseSettings, phase2: PhaseSettings,
          device: torch.device, sam_checkpoint: Path | None = None, seed: int = 0) -> dict:
    """Run both adaptation phases into ``out`` (resuming what a previous run left) and report.

    Returns the report dict (also written to out/report.json and out/report.md).
    """
    torch.manual_seed(seed)
    model = build_lpsam(config, len(pairs.classes))
    base = None
    if sam_checkpoint is not None:
        load_sam_checkpoint(model, sam_checkpoint)
        base = {"path": str(Path(sam_checkpoint).resolve()), "sha256": sha256_file(sam_checkpoint)}
    elif config.sam_variant is not None:
        log.warning("no --sam-checkpoint: training %s from random initialisation (slow; meant for tests)",
                    config.name)
    out.mkdir(parents=True, exist_ok=True)  # after the weights loaded: a failed load leaves no folder
    train_base = base is None
    counts = parameter_counts(model)
    log.info("LP-SAM %s parameters:\n%s", config.name, format_counts(counts))
    model.to(device)
    extra = {"config": config.to_dict(), "classes": [c.name for c in pairs.classes], "frames": len(pairs),
             "base": base and base["sha256"], "seed": seed, "held_out_split": pairs.split_digest()}
    ckpt = out / "checkpoints"
    summary1 = run_phase(model, pairs, 1, phase1, device, ckpt / "phase1.safetensors", train_base, extra)
    summary2 = run_phase(model, pairs, 2, phase2, device, ckpt / "phase2.safetensors", False, extra)
    t0 = time.perf_counter()
    metrics = evaluate(model, pairs, device)
    fit = training_fit(model, pairs, device)
    score_quality = evaluate_scores(model, pairs, device, out)
    phases = {"phase1": summary1, "phase2": summary2, "eval_seconds": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    figures = write_figures(out, model, pairs, device, phases,
                            {"phase1": asdict(phase1), "phase2": asdict(phase2)})
    phases["figures_seconds"] = round(time.perf_counter() - t0, 1)
    meta = save_adapt_dir(out, model.cpu(), pairs.classes, base,
                          {"params": counts, "trained_base": train_base})
    report = {
        "model": config.name, "device": str(device), "classes": [c.name for c in pairs.classes],
        "params": counts, "trained_base": train_base, "base_checkpoint": base, "data": pairs.summary(),
        "problems": pairs.problems[:50], "phases": phases, "heldout": metrics, "training_fit": fit,
        "score_quality": score_quality,
        "settings": {"phase1": asdict(phase1), "phase2": asdict(phase2)},
        "weights_sha256": meta["weights_sha256"], "figures": figures,
        "warnings": collapse_warnings(metrics),
    }
    write_report(out, report)
    return report
