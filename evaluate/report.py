"""Rebuild OUT/report.md, results.{parquet,csv}, tests.csv and figures from the stored cells.

The report covers the plan in OUT/sweep.json; it reads only cell files, so
``evaluate report OUT`` can rebuild it at any time (e.g. while a sweep is still running).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from evaluate.cells import CellKey, read_cell, read_overlay
from evaluate.figures import bar_chart, overlay_grid
from evaluate.metrics import metrics_for
from evaluate.stats import paired_tests, summary
from maskgen.provenance import atomic_path, atomic_write_text

COLUMNS = ("task", "fold", "method", "seed", "metric", "value", "best_epoch", "n_train", "n_val",
           "n_test", "seconds")


def load_plan(out_dir: Path) -> dict:
    path = out_dir / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out_dir} is not a sweep output folder")
    info = json.loads(path.read_text())
    return {**info["config"]["plan"], "_info": info}


def collect(out_dir: Path, plan: dict) -> tuple[list[dict], list[dict]]:
    """(rows, failures): one row per finished (task, fold, method, seed, metric)."""
    rows, failures = [], []
    for task in plan["tasks"]:
        for method in plan["methods"]:
            for seed in plan["seeds"]:
                for fold in range(plan["folds"]):
                    record = read_cell(CellKey(task, fold, method, seed), out_dir)
                    if record is None:
                        continue
                    if record.get("status") != "ok":
                        failures.append(record)
                        continue
                    for metric, value in record["metrics"].items():
                        rows.append({"task": task, "fold": fold, "method": method, "seed": seed,
                                     "metric": metric, "value": float(value),
                                     **{c: record.get(c) for c in COLUMNS[6:]}})
    return rows, failures


def write_results(out_dir: Path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("task", pa.string()), ("fold", pa.int64()), ("method", pa.string()), ("seed", pa.int64()),
        ("metric", pa.string()), ("value", pa.float64()), ("best_epoch", pa.int64()),
        ("n_train", pa.int64()), ("n_val", pa.int64()), ("n_test", pa.int64()), ("seconds", pa.float64())]))
    with atomic_path(out_dir / "results.parquet") as tmp:
        pq.write_table(table, tmp)
    with atomic_path(out_dir / "results.csv") as tmp:
        pacsv.write_csv(table, tmp)


def fold_values(rows: list[dict], task: str, method: str, metric: str) -> dict[int, float]:
    """fold -> value averaged over seeds."""
    acc = defaultdict(list)
    for r in rows:
        if r["task"] == task and r["method"] == method and r["metric"] == metric:
            acc[r["fold"]].append(r["value"])
    return {f: float(np.mean(v)) for f, v in sorted(acc.items())}


def comparisons(plan: dict) -> list[tuple[str, str]]:
    """(method, baseline): every method vs the reference; the full method vs each ablation."""
    ref, methods = plan["reference"], plan["methods"]
    pairs = [(m, ref) for m in methods if m != ref]
    full = plan.get("full_method")
    if full in methods:
        pairs += [(full, a) for a in plan.get("ablations", ()) if a in methods and a != full]
    return pairs


def _fmt(s: dict) -> str:
    if not s["n"]:
        return "—"
    if s["n"] < 2:
        return f"{100 * s['mean']:.1f} (n=1)"
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"


def _p(p: float) -> str:
    return "—" if p is None or math.isnan(p) else f"{p:.3g}"


def task_section(out_dir: Path, plan: dict, info: dict, rows: list[dict], tests: list[dict]) -> list[str]:
    task, kind = info["task"], info["kind"]
    metrics = list(metrics_for(kind))
    lines = [f"### {task} ({kind}, {info['dataset']})", ""]
    if info.get("status") != "ok":
        return lines + [f"Not evaluated: {info.get('error')}", ""]
    summaries = {(m, k): summary(list(fold_values(rows, task, m, k).values()))
                 for m in plan["methods"] for k in metrics}
    lines += ["| method | " + " | ".join(metrics) + " | folds | chosen epochs |",
              "|---" * (len(metrics) + 3) + "|"]
    for m in plan["methods"]:
        epochs = sorted({r["best_epoch"] for r in rows if r["task"] == task and r["method"] == m})
        n = summaries[(m, metrics[0])]["n"]
        lines.append(f"| {m} | " + " | ".join(_fmt(summaries[(m, k)]) for k in metrics)
                     + f" | {n} | {', '.join(map(str, epochs)) or '—'} |")
    lines.append("")
    if any(s["n"] for s in summaries.values()):
        bar_chart(out_dir / "figures" / f"{task}.png", task, metrics, list(plan["methods"]), summaries)
        lines += [f"![{task} bars](figures/{task}.png)", ""]
    overlays = {m: o for m in plan["methods"]
                if (o := read_overlay(CellKey(task, 0, m, plan["seeds"][0]), out_dir)) is not None}
    if overlays and len({len(o["images"]) for o in overlays.values()}) == 1:
        overlay_grid(out_dir / "overlays" / f"{task}.png", task, kind, info.get("class_names") or [], overlays)
        lines += [f"![{task} overlays](overlays/{task}.png)", ""]
    for method, base in comparisons(plan):
        for k in metrics:
            a, b = fold_values(rows, task, method, k), fold_values(rows, task, base, k)
            common = sorted(set(a) & set(b))
            t = paired_tests([a[f] for f in common], [b[f] for f in common])
            tests.append({"task": task, "metric": k, "method": method, "baseline": base, **t})
    return lines


def tasks_table(infos: list[dict]) -> list[str]:
    lines = ["| task | dataset | frames | groups | group key | fold sizes | excluded | unreadable files |",
             "|---|---|---|---|---|---|---|---|"]
    for i in infos:
        if i.get("status") != "ok":
            lines.append(f"| {i['task']} | {i['dataset']} | failed: {i.get('error', '')[:120]} |||||")
            continue
        key = (i.get("group_key") or "yes") if i["grouped"] else "**none** (one frame per group)"
        lines.append(f"| {i['task']} | {i['dataset']} | {i['frames']} | {i['groups']} | {key} | "
                     f"{i['fold_sizes']} | {i['excluded'] or '—'} | {i['n_problems']} |")
    ungrouped = sorted({i["dataset"] for i in infos if i.get("status") == "ok" and not i["grouped"]})
    lines += ["", f"Datasets without a group key (folds group by source file only): "
              f"{', '.join(ungrouped) or 'none'}.", ""]
    return lines


def tests_table(tests: list[dict]) -> list[str]:
    if not tests:
        return ["No comparison: only the reference method was evaluated.", ""]
    lines = ["| task | metric | method | vs | n | mean diff (points) | paired t p | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tests:
        diff = "—" if math.isnan(t["mean_diff"]) else f"{100 * t['mean_diff']:+.1f}"
        lines.append(f"| {t['task']} | {t['metric']} | {t['method']} | {t['baseline']} | {t['n']} | "
                     f"{diff} | {_p(t['t_p'])} | {_p(t['wilcoxon_p'])} |")
    return lines + [""]


def provenance_section(out_dir: Path) -> list[str]:
    path = out_dir / "backbones.json"
    backbones = json.loads(path.read_text()) if path.is_file() else []
    lines = []
    for b in backbones:
        lines += [f"- **{b['name']}**: {b['arch']}, "
                  + (f"`{b['path']}` (sha256 `{b['sha256'][:16]}…`)" if b["path"] else "random initialisation")]
        prov = b.get("provenance") or {}
        if prov:
            text = json.dumps(prov, sort_keys=True, default=str)
            lines.append(f"  - provenance: `{text[:600]}{'…' if len(text) > 600 else ''}`")
        elif b["path"]:
            lines.append("  - provenance: no JSON sidecar beside the file")
    return lines + [""]


def _profile_lines(plan: dict) -> list[str]:
    p = plan["profile"]
    seg = ("torchvision Mask R-CNN on ResNet + FPN" if p["seg_head"] == "maskrcnn"
           else "ResNet + FPN + light semantic head (BCE + Dice)")
    frames = "all frames" if not p["max_frames"] else \
        f"at most {p['max_frames']} frames per task (fixed random subset)"
    return [
        f"- Profile **{p['name']}**: {p['resolution']} px letter-boxed grayscale frames, "
        f"{frames}, "
        f"batch {p['batch_size']}.",
        f"- Classification: last {p['cls_trainable_stages']} backbone stages fine-tuned + linear head, "
        f"Adam lr {p['cls_lr']}, {p['cls_epochs']} epochs; accuracy and macro F1.",
        f"- Segmentation: {seg}; SGD lr {p['seg_lr']} (momentum {p['seg_momentum']}, weight decay "
        f"{p['seg_weight_decay']}, warm-up + cosine), {p['seg_epochs']} epochs; per-frame PPV, sensitivity, Dice.",
        f"- {plan['folds']}-fold grouped cross-validation (maskgen.folds; stratified by class for "
        f"classification; fold files in `folds/`), seeds {list(plan['seeds'])}. In every cell the epoch "
        f"is chosen on a validation split ({int(100 * p['val_fraction'])}% of the training folds' groups); "
        "the test fold is scored once, after selection.",
        "- Tables: mean ± sample std over folds [95% t interval], in percent; seeds are averaged "
        "within a fold first. Intervals over CV folds are optimistic (folds share training data).",
    ]


def build_report(out_dir: str | Path) -> Path:
    """Write results.parquet/.csv, tests.csv, figures/, overlays/ and report.md; return its path."""
    out_dir = Path(out_dir)
    plan = load_plan(out_dir)
    info = plan.pop("_info")
    rows, failures = collect(out_dir, plan)
    write_results(out_dir, rows)
    infos = []
    for task in plan["tasks"]:
        path = out_dir / "tasks" / f"{task}.json"
        infos.append(json.loads(path.read_text()) if path.is_file() else
                     {"task": task, "dataset": "?", "kind": "?", "status": "failed", "error": "not run yet"})
    tests: list[dict] = []
    body = []
    for i in infos:
        body += task_section(out_dir, plan, i, rows, tests)
    if tests:
        table = pa.Table.from_pylist(tests)
        with atomic_path(out_dir / "tests.csv") as tmp:
            pacsv.write_csv(table, tmp)
    done = len({(r["task"], r["fold"], r["method"], r["seed"]) for r in rows})
    planned = len(plan["tasks"]) * len(plan["methods"]) * len(plan["seeds"]) * plan["folds"]
    lines = [
        "# ANAUS downstream benchmark", "",
        f"Methods: {', '.join(plan['methods'])} (reference: {plan['reference']}). "
        f"Cells finished: {done} of {planned}; failed: {len(failures)}.",
        f"Code revision `{info.get('code_revision')}`, created {info.get('created')}, "
        f"device {info['config'].get('device')}.", f"Command: `{info.get('command')}`", "",
        "Numbers are reported as measured. On the phantom they test the pipeline, "
        "not the method's value on real ultrasound.", "",
        "## Protocol", *_profile_lines(plan), "",
        "## Tasks", *tasks_table(infos),
        "## Results", *body,
        "## Paired tests", "",
        "Each method against random initialisation, and the full method against each ablation, "
        f"on the same folds (n = folds; seeds averaged per fold). With n = {plan['folds']} the "
        f"two-sided Wilcoxon signed-rank p cannot fall below {2 / 2 ** plan['folds']:.3g}; read the "
        "t-test p with the caveat that CV folds are not independent. No correction for multiple "
        "comparisons is applied.", "",
        *tests_table(tests),
        "## Backbones and provenance", *provenance_section(out_dir),
    ]
    if failures:
        lines += ["## Failed cells", ""] + [
            f"- {f['task']} / {f['method']} / seed {f['seed']} / fold {f['fold']}: {f.get('error')}"
            for f in failures] + [""]
    lines += ["## Files", "- `results.parquet`, `results.csv`: one row per task, fold, method, seed, metric.",
              "- `tests.csv`: paired tests; `folds/`: fold assignments; `cells/`: one file per cell;",
              "  `tasks/`: what each dataset yielded; `figures/`, `overlays/`: the images above.", ""]
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report
