"""Markdown tables of adaptations over seeds: held-out Dice per anatomy class (latent prompts, and
in brackets one ground-truth click at the structure's innermost pixel / the ground-truth box; the
box alone for reports written before the click), held-out groups, the same Dice on the adaptation's
own training frames, the same Dice on a test phantom the adaptations never saw, and best-of-K Dice
on unseen datasets and on real frames with the margin over the best anatomy-free baseline.

usage: python scripts/seed_table.py ADAPT_DIR [ADAPT_DIR ...]

Each ADAPT_DIR is a ``maskgen adapt --out`` folder; its test-phantom Dice is read from
ADAPT_DIR/test.json (``maskgen evaluate-adapt``) and its unseen scores from
ADAPT_DIR/unseen/<dataset>/score.json when present (``scripts/adapt_seeds.sh`` writes both there),
and its scores on real frames from ADAPT_DIR/real/<dataset>/score.json (``REAL=`` of that script).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from maskgen.lpsam.report import mean_interval

AIM = 0.80  # the per-class held-out Dice the tiny default aims at in every seed


def _held_out(report: dict) -> str:
    """'camus 48 (2), ...': held-out frames per dataset and, when known, the groups they come from."""
    return ", ".join(f"{k} {v['held_out']}" + (f" ({v['held_out_groups']})" if "held_out_groups" in v else "")
                     for k, v in report["data"]["datasets"].items())


def _label(d: Path, dirs: list[Path]) -> str:
    """A row's name: the folder's, or parent/folder where two folders share a name (seed0 of two runs)."""
    return d.name if [x.name for x in dirs].count(d.name) == 1 else f"{d.parent.name}/{d.name}"


def heldout_rows(dirs: list[Path], name: str = "report.json") -> list[str]:
    """One row per adaptation of its per-class Dice in ``name``: report.json (the held-out split) or
    test.json (``maskgen evaluate-adapt``: frames it never trained on); folders without it are skipped."""
    dirs = [d for d in dirs if (d / name).exists()]
    if not dirs:
        return []
    reports = [json.loads((d / name).read_text()) for d in dirs]
    classes = list(reports[0]["heldout"]["latent"])
    what = "held-out" if name == "report.json" else "test"
    lines = ["| adaptation | " + " | ".join(classes) + f" | {what} frames (groups) |",
             "|---|" + "---|" * (len(classes) + 1)]
    for d, r in zip(dirs, reports, strict=True):
        cells = []
        for c in classes:
            lat = r["heldout"]["latent"][c]["dice_mean"]
            prompted = " / ".join(f"{r['heldout'][mode][c]['dice_mean']:.3f}" for mode in ("point", "box")
                                  if mode in r["heldout"])
            mark = "**" if lat is not None and lat < AIM else ""
            cells.append(f"{mark}{lat:.3f}{mark} ({prompted})")
        lines.append(f"| {_label(d, dirs)} | " + " | ".join(cells) + f" | {_held_out(r)} |")
    return [*lines, "", f"bold: under the aim of {AIM:.2f}.", *_interval_note(reports, classes)]


def _interval_note(reports: list[dict], classes: list[str]) -> list[str]:
    """How far a row's latent-prompt mean can move by the draw of its frames alone: the half-width of
    its normal 95% interval, 1.96 x std / sqrt(frames), as its range over the rows per class (none when
    the reports lack the std or frame counts)."""
    widths = {c: [mean_interval(q["dice_std"], q["frames"]) for r in reports
                  if (q := r["heldout"]["latent"][c]).get("dice_std") is not None and q.get("frames")]
              for c in classes}
    parts = []
    for c, w in widths.items():
        if w:
            lo, hi = f"{min(w):.3f}", f"{max(w):.3f}"
            parts.append(f"{c} ±{lo}" + ("" if lo == hi else f"-{hi}"))
    if not parts:
        return []
    return ["95% interval of a cell's mean over its frames (1.96 x std / sqrt(frames), frames counted as "
            "independent: narrower than the truth where frames share a patient): " + ", ".join(parts) + "."]


def fit_rows(dirs: list[Path]) -> list[str]:
    """One row per adaptation of its latent-prompt Dice per class on a sample of its own training
    frames (report.json's ``training_fit``, ``maskgen.lpsam.evaluate.training_fit``) and, in brackets,
    held out minus training: far below zero is memorised, near zero with a low Dice is not learnt.
    Reports written before the training frames were scored are skipped."""
    reports = [(d, r) for d in dirs if "training_fit" in (r := json.loads((d / "report.json").read_text()))]
    if not reports:
        return []
    classes = list(reports[0][1]["training_fit"])
    lines = ["| adaptation | " + " | ".join(classes) + " | training frames |", "|---|" + "---|" * (len(classes) + 1)]
    for d, r in reports:
        fit = r["training_fit"]
        cells = [f"{fit[c]['dice_mean']:.3f} ({r['heldout']['latent'][c]['dice_mean'] - fit[c]['dice_mean']:+.3f})"
                 for c in classes]
        lines.append(f"| {_label(d, [x for x, _ in reports])} | " + " | ".join(cells)
                     + f" | {', '.join(str(fit[c]['frames']) for c in classes)} |")
    return ["", "Latent-prompt Dice on the adaptation's own training frames, unaugmented (in brackets: held out "
            "minus training; far below zero: memorised)", "", *lines]


BRACKETS = "in brackets: one ground-truth click / the ground-truth box, or the box alone in earlier reports"
UNSEEN_TITLE = "Best-of-K Dice on datasets the adaptation never saw (in brackets: minus the best anatomy-free baseline)"
REAL_TITLE = ("Best-of-K Dice on real ultrasound, frames none of us generated (in brackets: minus the best "
              "anatomy-free baseline; frames scored)")


def unseen_rows(dirs: list[Path], sub: str = "unseen", title: str = UNSEEN_TITLE) -> list[str]:
    """One row per adaptation of the stores' scores under ADAPT_DIR/<sub>/<dataset>/score.json
    (``maskgen score``): ``unseen`` the phantom datasets it never saw, ``real`` real frames."""
    names = sorted({p.parent.name for d in dirs for p in (d / sub).glob("*/score.json")})
    if not names:
        return []
    lines = ["| adaptation | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for d in dirs:
        cells = []
        for n in names:
            path = d / sub / n / "score.json"
            if not path.exists():
                cells.append("n/a")
                continue
            s = json.loads(path.read_text())
            frames = f"; {s['frames_scored']}" if sub == "real" else ""
            cells.append(f"{s['groups']['all']['lpsam']['best_dice']:.3f} "
                         f"({s['margin']['lpsam_minus_best_baseline']:+.3f}{frames})")
        lines.append(f"| {_label(d, dirs)} | " + " | ".join(cells) + " |")
    return ["", title, "", *lines]


@click.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def main(dirs: tuple[Path, ...]) -> None:
    dirs = [d for d in dirs if (d / "report.json").exists()]
    if not dirs:
        raise click.UsageError("no finished adaptation (ADAPT_DIR/report.json) among the folders given")
    test = heldout_rows(dirs, "test.json")
    if test:
        test = ["", "Dice on a test phantom the adaptations never trained on (`maskgen evaluate-adapt`), latent "
                f"prompts ({BRACKETS})", "", *test]
    click.echo("\n".join([f"Held-out Dice, latent prompts ({BRACKETS})", "",
                          *heldout_rows(dirs), *fit_rows(dirs), *test, *unseen_rows(dirs),
                          *unseen_rows(dirs, "real", REAL_TITLE)]))


if __name__ == "__main__":
    main()
