"""report.json + report.md of an adaptation: held-out mask quality per anatomy class."""

from __future__ import annotations

from pathlib import Path

from maskgen.common.files import atomic_write_json, atomic_write_text
from maskgen.lpsam.figures import figures_markdown

# a latent token has collapsed when its held-out Dice is this far below the GT-box Dice
COLLAPSE_RATIO = 0.5
COLLAPSE_GAP = 0.2


def collapse_warnings(heldout: dict) -> list[str]:
    """One line per anatomy class whose latent-prompt held-out Dice is far below its GT-box
    Dice (below ``COLLAPSE_RATIO`` x and ``COLLAPSE_GAP`` under it): the latent token has
    collapsed while the decoder can delineate the class when prompted."""
    out = []
    for name, latent in heldout.get("latent", {}).items():
        box = heldout.get("box", {}).get(name, {})
        d, b = latent.get("dice_mean"), box.get("dice_mean")
        if d is None or b is None:
            continue
        if d < COLLAPSE_RATIO * b and b - d > COLLAPSE_GAP:
            out.append(f"latent token {name} collapsed: held-out Dice {d:.3f} with latent prompts vs {b:.3f} "
                       f"with GT boxes; its masks are unusable (adapt again, e.g. another --seed or more --steps2)")
    return out


def _pm(mean, std) -> str:
    return "n/a" if mean is None else f"{mean:.3f} ± {std:.3f}"


def _f3(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def mean_interval(std: float, frames: int) -> float:
    """Half-width of the normal 95% interval of a mean over ``frames`` values of spread ``std``,
    1.96 x std / sqrt(frames): how far a class's mean Dice can move by the draw of its frames alone
    (frames counted as independent, so narrower than the truth where frames share a patient)."""
    return 1.96 * std / frames ** 0.5


MEAN_INTERVAL_NOTE = ("± mean: the 95% interval of the mean Dice over those frames (1.96 x std / sqrt(frames)), "
                      "narrower than the truth where frames share a patient.")


def quality_table(per_class: dict) -> list[str]:
    """Markdown rows of ``maskgen.lpsam.evaluate.class_report`` results, one per class; the column
    "± mean" is the Dice mean's 95% interval (``mean_interval``)."""
    lines = ["| anatomy class | frames | Dice | ± mean | IoU | median Dice | precision | recall "
             "| frames without it | false positives there |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in per_class.items():
        fp = "n/a" if r["false_positive_rate"] is None else f"{r['false_positive_rate']:.2f}"
        med, prec, rec = (_f3(r.get(k)) for k in ("dice_median", "precision_mean", "recall_mean"))
        ci = ("n/a" if r["dice_mean"] is None or not r["frames"]
              else f"±{mean_interval(r['dice_std'], r['frames']):.3f}")
        lines.append(f"| {name} | {r['frames']} | {_pm(r['dice_mean'], r['dice_std'])} | {ci} | "
                     f"{_pm(r['iou_mean'], r['iou_std'])} | {med} | {prec} | {rec} | {r['empty_gt']} | {fp} |")
    return lines


def prompted_dice(heldout: dict, name: str) -> str:
    """'GT click 0.790, GT box 0.886': class ``name``'s mean Dice with each ground-truth prompt of
    ``heldout`` (``maskgen.lpsam.evaluate``; a report without clicks gives the box alone)."""
    return ", ".join(f"GT {what} {_f3(heldout[mode][name]['dice_mean'])}"
                     for what, mode in (("click", "point"), ("box", "box")) if mode in heldout)


def prompt_comparison(heldout: dict) -> list[str]:
    """Markdown: mean Dice per class with latent prompts, with one click at the structure's innermost
    pixel and with its ground-truth box (``maskgen.lpsam.evaluate``); none for reports without clicks."""
    if "point" not in heldout:
        return []
    lines = ["## Latent prompts against a person's prompts", "",
             "Mean Dice per class. A token at the click's Dice finds its structure as well as a person "
             "clicking on it; the click-to-box gap is the extent the decoder cannot draw from a point.", "",
             "| anatomy class | latent prompts | one click (innermost pixel) | ground-truth box |",
             "|---|---:|---:|---:|"]
    for name, latent in heldout["latent"].items():
        click, box = heldout["point"][name]["dice_mean"], heldout["box"][name]["dice_mean"]
        lines.append(f"| {name} | {_f3(latent['dice_mean'])} | {_f3(click)} | {_f3(box)} |")
    return [*lines, ""]


def fit_section(heldout: dict, fit: dict | None) -> list[str]:
    """Latent-prompt Dice per class on a sample of training frames beside the held-out Dice
    (``evaluate.training_fit``); nothing for a report written before it was measured."""
    if not fit:
        return []
    lines = ["## Memorised or not learnt? Training frames against held-out frames", "",
             "Latent-prompt Dice on a sample of the frames the adaptation trained on (as they are, without "
             "augmentation) beside the held-out Dice. A class far better on its training frames than on "
             "held-out ones is memorised (more augmentation or data); one low on both is not learnt (its "
             "training frames are as hard: more steps, capacity, or structures the images barely show).", "",
             "| anatomy class | training frames | Dice, training frames | Dice, held out | held out minus training |",
             "|---|---:|---:|---:|---:|"]
    for name, row in fit.items():
        train, held = row.get("dice_mean"), heldout["latent"].get(name, {}).get("dice_mean")
        gap = f"{held - train:+.3f}" if train is not None and held is not None else "n/a"
        lines.append(f"| {name} | {row['frames']} | {_f3(train)} | {_f3(held)} | {gap} |")
    return [*lines, ""]


def score_section(quality: dict | None) -> list[str]:
    """Predicted score vs true IoU on the held-out pairs (``maskgen.lpsam.score_quality``)."""
    if not quality:
        return []
    rho = _f3(quality["spearman"])
    lines = ["## Do the scores rank the masks? Predicted score vs true IoU", "",
             f"Spearman rank correlation between the predicted score (the store's per-mask score) and "
             f"the mask's true IoU, over {quality['pairs']} held-out (frame, class) pairs: **{rho}** "
             f"(mean score {quality['mean_score']}, mean IoU {quality['mean_iou']}); baseline without an IoU "
             f"head ({quality.get('baseline', 'n/a')}): {_f3(quality.get('baseline_spearman'))}.", "",
             "| anatomy class | pairs | Spearman | baseline Spearman | mean score | mean IoU |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in quality["per_class"].items():
        lines.append(f"| {name} | {r['pairs']} | {_f3(r['spearman'])} | {_f3(r.get('baseline_spearman'))} | "
                     f"{r['mean_score']} | {r['mean_iou']} |")
    return [*lines, "", f"![predicted score vs true IoU]({quality['figure']})", ""]


def _box_decoder(phase2: dict) -> str:
    """Which decoder the box-prompt rows measure (phase 2 may train it: ``train_decoder``)."""
    if not phase2.get("train_decoder"):
        return "phase-1 model, upper bound"
    replay = phase2.get("prompt_replay", 0)
    return ("the decoder as phase 2 left it, trained on the latent tokens"
            + (f" with GT prompts replayed at weight {replay:g}" if replay else ", no longer phase 1's"))


def _held_out(counts: dict) -> str:
    """'48 held out' or, with the split's groups known, '48 held out, from 2 groups'."""
    groups = counts.get("held_out_groups")
    return f"{counts['held_out']} held out" + ("" if groups is None else f", from {groups} groups")


def render_markdown(report: dict) -> str:
    p = report["params"]
    ph = report["phases"]
    lines = [
        f"# LP-SAM adaptation report ({report['model']})", "",
        f"Device {report['device']}; base: "
        + (f"`{report['base_checkpoint']['path']}` (sha256 {report['base_checkpoint']['sha256'][:12]}...)"
           if report["base_checkpoint"] else "none (random initialisation, whole model trained in phase 1)")
        + f"; weights sha256 {report['weights_sha256'][:12]}...", "",
        *[line for w in collapse_warnings(report["heldout"]) for line in (f"**WARNING**: {w}", "")],
        "## Held-out mask quality, latent prompts (no prompt from a person)", "",
        "Grouped held-out split; masks thresholded at 0.5 at the model's input size; mean ± std over "
        f"frames whose ground truth contains the class; {MEAN_INTERVAL_NOTE[:-1]}. Precision (of the frames "
        "with a non-empty mask) well under recall: the masks are larger than their structure.", "",
        *quality_table(report["heldout"]["latent"]), "",
        *prompt_comparison(report["heldout"]),
        *fit_section(report["heldout"], report.get("training_fit")),
        f"## For reference: ground-truth box prompts ({_box_decoder(report.get('settings', {}).get('phase2', {}))})", "",
        *quality_table(report["heldout"]["box"]), "",
        *figures_markdown(report.get("figures", {})),
        *score_section(report.get("score_quality")),
        "## Parameters", "",
        f"SAM {p['sam'] / 1e6:.2f} M; phase 1 adapter + conv branch {p['phase1_adapter'] / 1e6:.2f} M; "
        f"phase 2 latent prompt engine {p['phase2_lpe'] / 1e6:.2f} M.",
        f"Trainable: phase 1 {ph['phase1']['trainable_params'] / 1e6:.2f} M, "
        f"phase 2 {ph['phase2']['trainable_params'] / 1e6:.2f} M.", "",
        "## Data and time", "",
        f"{report['data']['frames']} frames ({report['data']['skipped']} skipped): "
        + ", ".join(f"{k} {v['frames']} ({_held_out(v)})" for k, v in report["data"]["datasets"].items()),
        f"Phase 1: {ph['phase1']['steps']} steps, {ph['phase1'].get('seconds', 0)} s; phase 2: "
        f"{ph['phase2']['steps']} steps, {ph['phase2'].get('seconds', 0)} s; evaluation {ph['eval_seconds']} s.",
        f"Loss per checkpoint interval, phase 1: {ph['phase1'].get('loss_history')}",
        f"phase 2: {ph['phase2'].get('loss_history')}", "",
    ]
    return "\n".join(lines)


def write_report(out: str | Path, report: dict) -> None:
    atomic_write_json(Path(out) / "report.json", report)
    atomic_write_text(Path(out) / "report.md", render_markdown(report))
