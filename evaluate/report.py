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
from evaluate.figures import bar_chart, overlay_grid, summary_figure
from evaluate.metrics import SELECTION_METRIC, metrics_for
from evaluate.protocols import TITLES, applies
from evaluate.stats import paired_tests, summary
from maskgen.common.files import atomic_path, atomic_write_text

COLUMNS = ("task", "protocol", "fold", "method", "seed", "metric", "value", "best_epoch", "n_train",
           "n_val", "n_test", "seconds")
FIRST_EXTRA = COLUMNS.index("best_epoch")


def load_plan(out_dir: Path) -> dict:
    path = out_dir / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {out_dir} is not a sweep output folder")
    info = json.loads(path.read_text())
    return {**info["config"]["plan"], "_info": info}


def plan_protocols(plan: dict) -> tuple[str, ...]:
    """The plan's protocols (a sweep from before protocols existed ran fine-tuning only)."""
    return tuple(plan["profile"].get("protocols", ("finetune",)))


def collect(out_dir: Path, plan: dict) -> tuple[list[dict], list[dict]]:
    """(rows, failures): one row per finished (task, protocol, fold, method, seed, metric)."""
    rows, failures = [], []
    for task in plan["tasks"]:
        for protocol in plan_protocols(plan):
            for method in plan["methods"]:
                for seed in plan["seeds"]:
                    for fold in range(plan["folds"]):
                        record = read_cell(CellKey(task, fold, method, seed, protocol), out_dir)
                        if record is None:
                            continue
                        if record.get("status") != "ok":
                            failures.append({**record, "protocol_name": protocol})
                            continue
                        for metric, value in record["metrics"].items():
                            rows.append({"task": task, "protocol": protocol, "fold": fold, "method": method,
                                         "seed": seed, "metric": metric, "value": float(value),
                                         **{c: record.get(c) for c in COLUMNS[FIRST_EXTRA:]}})
    return rows, failures


def write_results(out_dir: Path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("task", pa.string()), ("protocol", pa.string()), ("fold", pa.int64()), ("method", pa.string()), ("seed", pa.int64()),
        ("metric", pa.string()), ("value", pa.float64()), ("best_epoch", pa.int64()),
        ("n_train", pa.int64()), ("n_val", pa.int64()), ("n_test", pa.int64()), ("seconds", pa.float64())]))
    with atomic_path(out_dir / "results.parquet") as tmp:
        pq.write_table(table, tmp)
    with atomic_path(out_dir / "results.csv") as tmp:
        pacsv.write_csv(table, tmp)


def fold_values(rows: list[dict], task: str, method: str, metric: str,
                protocol: str = "finetune") -> dict[int, float]:
    """fold -> value averaged over seeds."""
    acc = defaultdict(list)
    for r in rows:
        if (r["task"] == task and r["method"] == method and r["metric"] == metric
                and r.get("protocol", "finetune") == protocol):
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


def display_order(plan: dict) -> list[str]:
    """Methods side by side: the reference, the ablations, the full method, then the others."""
    methods = list(plan["methods"])
    first = [plan["reference"], *plan.get("ablations", ()), plan.get("full_method")]
    ordered = [m for m in first if m in methods]
    return ordered + [m for m in methods if m not in ordered]


def _fmt(s: dict) -> str:
    if not s["n"]:
        return "—"
    if s["n"] < 2:
        return f"{100 * s['mean']:.1f} (n=1)"
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"


def _p(p: float) -> str:
    return "—" if p is None or math.isnan(p) else f"{p:.3g}"


def task_section(out_dir: Path, plan: dict, info: dict, rows: list[dict], tests: list[dict],
                 protocol: str = "finetune") -> list[str]:
    """One task's table under one protocol (+ bars and overlays for fine-tuning); appends the
    paired tests to ``tests``."""
    task, kind = info["task"], info["kind"]
    lines = [f"### {task} ({kind}, {info['dataset']})", ""]
    if info.get("status") != "ok":
        return lines + [f"Not evaluated: {info.get('error')}", ""]
    metrics = list(metrics_for(kind))
    methods = display_order(plan)
    summaries = {(m, k): summary(list(fold_values(rows, task, m, k, protocol).values()))
                 for m in methods for k in metrics}
    fpn = _fpn_by_method(rows, task, protocol) if kind == "segmentation" else {}
    lines += ["| method | " + " | ".join(metrics) + " | folds | chosen epochs |" + (" FPN |" if fpn else ""),
              "|---" * (len(metrics) + 3 + bool(fpn)) + "|"]
    for m in methods:
        epochs = sorted({r["best_epoch"] for r in rows
                         if r["task"] == task and r["method"] == m and r["protocol"] == protocol})
        n = summaries[(m, metrics[0])]["n"]
        lines.append(f"| {m} | " + " | ".join(_fmt(summaries[(m, k)]) for k in metrics)
                     + f" | {n} | {', '.join(map(str, epochs)) or '—'} |" + (f" {fpn.get(m, '—')} |" if fpn else ""))
    lines.append("")
    suffix = "" if protocol == "finetune" else f"-{protocol}"
    if any(s["n"] for s in summaries.values()):
        bar_chart(out_dir / "figures" / f"{task}{suffix}.png", f"{task} ({protocol})", metrics, methods, summaries)
        lines += [f"![{task} bars](figures/{task}{suffix}.png)", ""]
    if protocol == "finetune":
        overlays = {m: o for m in methods
                    if (o := read_overlay(CellKey(task, 0, m, plan["seeds"][0]), out_dir)) is not None}
        if overlays and len({len(o["images"]) for o in overlays.values()}) == 1:
            overlay_grid(out_dir / "overlays" / f"{task}.png", task, kind, info.get("class_names") or [], overlays)
            what = ("best, median and worst fold-0 test frames of each method by Dice"
                    if kind == "segmentation" else "first fold-0 test frames")
            lines += [f"![{task} overlays](overlays/{task}.png)", "", f"Overlays: {what}.", ""]
    for method, base in comparisons(plan):
        for k in metrics:
            a, b = fold_values(rows, task, method, k, protocol), fold_values(rows, task, base, k, protocol)
            common = sorted(set(a) & set(b))
            t = paired_tests([a[f] for f in common], [b[f] for f in common])
            tests.append({"protocol": protocol, "task": task, "metric": k, "method": method, "baseline": base, **t})
    return lines


def _fpn_by_method(rows: list[dict], task: str, protocol: str) -> dict[str, str]:
    """method -> the FPN its cells of this task used (from the cell records)."""
    seen = defaultdict(set)
    for r in rows:
        if r["task"] == task and r["protocol"] == protocol and r.get("fpn"):
            seen[r["method"]].add(r["fpn"])
    return {m: "/".join(sorted(v)) for m, v in seen.items()}


def label_efficiency_table(plan: dict, infos: list[dict], rows: list[dict], fraction: float) -> list[str]:
    """Main metric with a fraction of the labels next to all labels, per task and method."""
    methods = display_order(plan)
    lines = [f"| task | metric | method | {100 * fraction:g}% labels | 100% labels | retained |",
             "|---|---|---|---|---|---|"]
    for info in infos:
        if info.get("status") != "ok":
            continue
        metric = SELECTION_METRIC[info["kind"]]
        for m in methods:
            low = summary(list(fold_values(rows, info["task"], m, metric, "low-label").values()))
            full = summary(list(fold_values(rows, info["task"], m, metric, "finetune").values()))
            kept = (f"{100 * low['mean'] / full['mean']:.0f}%" if low["n"] and full["n"] and full["mean"] > 0
                    else "—")
            lines.append(f"| {info['task']} | {metric} | {m} | {_fmt(low)} | {_fmt(full)} | {kept} |")
    return lines + [""]


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


def _paired_cell(test: dict | None) -> str:
    """'+4.0 (p 0.26)': a paired test's mean difference in points and its t-test p."""
    if test is None or math.isnan(test["mean_diff"]):
        return "—"
    p = test["t_p"]
    return f"{100 * test['mean_diff']:+.1f}" + ("" if math.isnan(p) else f" (p {p:.2f})" if p >= 0.005 else " (p < 0.01)")


def glance_table(plan: dict, infos: list[dict], rows: list[dict], tests: list[dict]) -> list[str]:
    """The main metric (macro F1 / Dice) of every (protocol, task) in one table: each method's mean
    ± the 95% t half-interval over folds, in percent, then the full method's paired difference
    with the reference and with each ablation (points, paired t-test p; every method's with the
    reference when the plan has no full method). ``tests`` are ``task_section``'s."""
    methods = display_order(plan)
    full = plan.get("full_method")
    pairs = [(m, b) for m, b in comparisons(plan) if full in (None, m)]
    by_key = {(t["protocol"], t["task"], t["metric"], t["method"], t["baseline"]): t for t in tests}
    lines = ["| protocol, task | " + " | ".join(methods) + " | " + " | ".join(f"{m} − {b}" for m, b in pairs) + " |",
             "|---" * (1 + len(methods) + len(pairs)) + "|"]
    for protocol in plan_protocols(plan):
        for info in infos:
            if info.get("status") != "ok" or not applies(protocol, info["kind"]):
                continue
            metric = SELECTION_METRIC[info["kind"]]
            stats = [summary(list(fold_values(rows, info["task"], m, metric, protocol).values())) for m in methods]
            if not any(s["n"] for s in stats):
                continue
            cells = ["—" if not s["n"] else f"{100 * s['mean']:.1f} (n=1)" if s["n"] < 2
                     else f"{100 * s['mean']:.1f} ± {100 * (s['ci_high'] - s['mean']):.1f}" for s in stats]
            cells += [_paired_cell(by_key.get((protocol, info["task"], metric, m, b))) for m, b in pairs]
            lines.append(f"| {protocol}, {info['task']} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return []
    return ["Main metric of every task and protocol (macro F1 for classification, Dice for segmentation), "
            "in percent: mean ± the 95% t half-interval over folds; the differences are paired on the "
            "same folds, with the t-test p.", "", *lines, ""]


def tests_table(tests: list[dict]) -> list[str]:
    """The selection metric's tests (macro F1 / Dice); every metric's are in tests.csv."""
    tests = [t for t in tests if t["metric"] in SELECTION_METRIC.values()]
    if not tests:
        return ["No comparison: only the reference method was evaluated.", ""]
    lines = ["| protocol | task | metric | method | vs | n | mean diff (points) | paired t p | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in tests:
        diff = "—" if math.isnan(t["mean_diff"]) else f"{100 * t['mean_diff']:+.1f}"
        lines.append(f"| {t['protocol']} | {t['task']} | {t['metric']} | {t['method']} | {t['baseline']} | {t['n']} | "
                     f"{diff} | {_p(t['t_p'])} | {_p(t['wilcoxon_p'])} |")
    return lines + [""]


FPN_TEXT = {"pre-trained": "pre-trained (the export's FILE.fpn.safetensors)",
            "step-0": "step-0 FPN of pre-training (the reference's initial FPN)",
            "new": "new (torchvision default initialisation; the file has no FPN)"}


def provenance_section(out_dir: Path) -> list[str]:
    path = out_dir / "backbones.json"
    backbones = json.loads(path.read_text()) if path.is_file() else []
    lines = []
    for b in backbones:
        source = (f"`{b['path']}` (sha256 `{b['sha256'][:16]}…`)" if b["path"]
                  else f"step-0 weights of pre-training, seed {(b.get('provenance') or {}).get('seed')}")
        lines += [f"- **{b['name']}**: {b['arch']}, {source}"]
        prov = b.get("provenance") or {}
        if prov:
            text = json.dumps(prov, sort_keys=True, default=str)
            lines.append(f"  - provenance: `{text[:600]}{'…' if len(text) > 600 else ''}`")
        elif b["path"]:
            lines.append("  - provenance: no JSON sidecar beside the file")
    return lines + [""]


def reference_section(out_dir: Path, plan: dict) -> list[str]:
    """The reference's initialisation recipe and the FPN every method's segmentation used."""
    path = out_dir / "backbones.json"
    backbones = {b["name"]: b for b in (json.loads(path.read_text()) if path.is_file() else [])}
    ref = backbones.get(plan["reference"], {})
    prov = ref.get("provenance") or {}
    lines = [f"The reference **{plan['reference']}** is the pre-training model's starting point: "
             f"{prov.get('init', 'unknown recipe')}; seed {prov.get('seed')} (the pre-training seed), "
             f"built by `{prov.get('source', '?')}`. Every \"vs {plan['reference']}\" difference therefore "
             "measures pre-training, not a different initialisation.", "",
             "| method | backbone | FPN in segmentation | FPN channels |", "|---|---|---|---|"]
    for name in display_order(plan):
        b = backbones.get(name)
        if b is None:
            continue
        what = "step-0 init" if not b.get("path") else f"`{Path(b['path']).name}`"
        lines.append(f"| {name} | {what} | {FPN_TEXT.get(b.get('fpn') or 'new', b.get('fpn'))} | "
                     f"{b.get('fpn_channels') or plan['profile'].get('seg_fpn_channels', 256)} |")
    return lines + [""]


def pretraining_section(out_dir: Path, plan: dict) -> list[str]:
    """The pre-trainings ``--ablations`` ran (OUT/backbones/<method>-run): did each learn, and had
    it stopped learning; and figures/pretraining.png with their probes side by side."""
    from evaluate.ablations import run_dir
    from pretrain.figures import draw_comparison
    from pretrain.summary import summarize_run

    runs = {m: run_dir(out_dir, m) / "metrics.jsonl" for m in display_order(plan)}
    runs = {m: p for m, p in runs.items() if p.is_file()}
    if not runs:
        return []
    summaries = {}
    for method, path in runs.items():
        try:
            summaries[method] = summarize_run(path)
        except ValueError:
            continue
    if not summaries:
        return []
    keys = sorted({k for s in summaries.values() for k in s.probes})
    lines = ["## Pre-training", "",
             "The pre-trainings `--ablations` ran (`backbones/<method>-run/`: metrics.jsonl, curves.png). "
             "Online probes of the frozen backbone: step 0 -> last (peak, at step); 'last quarter' = the share "
             "of the probe's rise that came in the run's last quarter of steps (near 0: it had flattened; "
             "near 100%: still rising when the run ended).", "",
             "| method | steps | pretext loss first -> last | ‖w − w0‖/‖w0‖ | "
             + " | ".join(f"`{k.removeprefix('probe/')}`" for k in keys) + " |",
             "|---|---:|---|---:|" + "---|" * len(keys)]
    for method, s in summaries.items():
        cells = []
        for k in keys:
            t = s.probes.get(k)
            if t is None:
                cells.append("-")
                continue
            step, value = t.peak
            late = "" if math.isnan(t.late_share) else f"; last quarter {100 * t.late_share:.0f}%"
            cells.append(f"{t.first:.3f} -> {t.last:.3f} (peak {value:.3f} at {step}{late})")
        lines.append(f"| {method} | {s.steps} | {s.loss[0]:.2f} -> {s.loss[1]:.2f} | {s.rel_change:.3f} | "
                     + " | ".join(cells) + " |")
    refs = sorted({f"`{k.removeprefix('probe/')}` {v:.3f}" for s in summaries.values() for k, v in s.references.items()})
    if refs:
        lines += ["", f"Probe references at step 0: {', '.join(refs)}."]
    draw_comparison({m: runs[m] for m in summaries}, out_dir / "figures" / "pretraining.png",
                    "pre-training runs of this sweep")
    return lines + ["", "![pre-training](figures/pretraining.png)", ""]


def _profile_lines(plan: dict) -> list[str]:
    p = plan["profile"]
    light = (f"ResNet + FPN ({p.get('seg_fpn_channels', 64)} channels) + light semantic head "
             f"(1x1 reduction to {p.get('seg_head_channels', 64)}, two convolutions; BCE + Dice)")
    seg = "torchvision Mask R-CNN on ResNet + FPN (256 channels)" if p["seg_head"] == "maskrcnn" else light
    frames = "all frames" if not p["max_frames"] else \
        f"at most {p['max_frames']} frames per task (fixed random subset)"
    protocols = plan_protocols(plan)
    lines = [
        f"- Profile **{p['name']}**: {p['resolution']} px letter-boxed grayscale frames, {frames}, "
        f"batch {p['batch_size']}; protocols {', '.join(protocols)}.",
        f"- Fine-tuning, classification: last {p['cls_trainable_stages']} backbone stages fine-tuned + linear "
        f"head, Adam lr {p['cls_lr']}, {p['cls_epochs']} epochs; accuracy and macro F1.",
        f"- Fine-tuning, segmentation: {seg}; SGD lr {p['seg_lr']} (momentum {p['seg_momentum']}, weight decay "
        f"{p['seg_weight_decay']}, warm-up + cosine), {p['seg_epochs']} epochs; per-frame PPV, sensitivity, "
        "Dice. Our backbones bring their pre-trained FPN, the reference its step-0 FPN; other files get a "
        "new FPN (see the table below).",
    ]
    if "linear" in protocols:
        lines.append(f"- Linear probe (classification): frozen backbone (BatchNorm statistics frozen), "
                     f"global-average-pooled layer4 features computed once and standardised with the training "
                     f"frames' statistics; a linear softmax head, full-batch Adam lr {p.get('linear_lr')}, "
                     f"weight decay {p.get('linear_weight_decay')}, {p.get('linear_epochs')} epochs.")
    if "frozen" in protocols:
        lines.append(f"- Frozen-backbone segmentation: backbone and FPN frozen, the fused stride-4 FPN features "
                     f"computed once; only the light head is trained (SGD as above, {p.get('frozen_epochs')} "
                     "epochs, no augmentation).")
    if "low-label" in protocols:
        lines.append(f"- Label efficiency: fine-tuning as above on {100 * p.get('label_fraction', 0.1):g}% of "
                     "the training folds' groups (maskgen.datasets.folds.grouped_split, stratified for classification, "
                     "drawn per fold and seed), same validation and test frames as the 100% cells.")
    lines += [
        f"- {plan['folds']}-fold grouped cross-validation (maskgen.datasets.folds; stratified by class for "
        f"classification; fold files in `folds/`), seeds {list(plan['seeds'])}. In every cell the epoch "
        f"is chosen on a validation split ({int(100 * p['val_fraction'])}% of the training folds' groups); "
        "the test fold is scored once, after selection.",
        "- Tables: mean ± sample std over folds [95% t interval], in percent; seeds are averaged "
        "within a fold first. Intervals over CV folds are optimistic (folds share training data).",
    ]
    return lines


def build_report(out_dir: str | Path, tasks: list[str] | None = None,
                 protocols: list[str] | None = None, seeds: list[int] | None = None) -> Path:
    """Write results.parquet/.csv, tests.csv, figures/, overlays/ and report.md; return its path.

    The last sweep's plan (``sweep.json``) says what to report; ``tasks`` / ``protocols`` /
    ``seeds`` replace its tasks / protocols / seeds (the cells that several sweeps into one OUT
    finished, e.g. ``make demo``'s two passes). Cells that are not there are left out of the
    tables, and a protocol that ran fewer seeds than reported says which it ran."""
    out_dir = Path(out_dir)
    plan = load_plan(out_dir)
    info = plan.pop("_info")
    if tasks:
        plan["tasks"] = list(tasks)
    if protocols:
        plan["profile"] = {**plan["profile"], "protocols": list(protocols)}
    if seeds:
        plan["seeds"] = list(seeds)
    rows, failures = collect(out_dir, plan)
    ran_seeds = {(r["protocol"], r["seed"]) for r in rows} | {(f["protocol_name"], f["seed"]) for f in failures}
    seeds_run = {p: sorted(s for q, s in ran_seeds if q == p) or list(plan["seeds"]) for p in plan_protocols(plan)}
    write_results(out_dir, rows)
    infos = []
    for task in plan["tasks"]:
        path = out_dir / "tasks" / f"{task}.json"
        infos.append(json.loads(path.read_text()) if path.is_file() else
                     {"task": task, "dataset": "?", "kind": "?", "status": "failed", "error": "not run yet"})
    protocols = plan_protocols(plan)
    tests: list[dict] = []
    body, panels = [], []
    ran = {(r["task"], r["protocol"]) for r in rows} | {(f["task"], f.get("protocol_name", "finetune"))
                                                         for f in failures}
    not_run: dict[str, list[str]] = {}  # protocol -> tasks it applies to without a cell (other sweeps' scope)
    for protocol in protocols:
        section = [i for i in infos if i.get("status") != "ok" or applies(protocol, i["kind"])]
        if rows or failures:
            not_run[protocol] = [i["task"] for i in section
                                 if i.get("status") == "ok" and (i["task"], protocol) not in ran]
            section = [i for i in section if i["task"] not in not_run[protocol]]
        if not section:
            continue
        body += [f"## {TITLES[protocol]}", ""]
        if not_run.get(protocol):
            body += [f"Not run under this protocol: {', '.join(not_run[protocol])}.", ""]
        if seeds_run[protocol] != list(plan["seeds"]):
            body += [f"Seeds run under this protocol: {', '.join(map(str, seeds_run[protocol]))}.", ""]
        if protocol == "low-label":
            fraction = plan["profile"].get("label_fraction", 0.1)
            body += [f"Main metric with {100 * fraction:g}% and 100% of the training folds' labels "
                     "(same folds; 'retained' = ratio of the means).", "",
                     *label_efficiency_table(plan, section, rows, fraction),
                     f"Full tables with {100 * fraction:g}% of the labels:", ""]
        for i in section:
            body += task_section(out_dir, plan, i, rows, tests, protocol)
        panels.append((TITLES[protocol].split(" (")[0], {
            i["task"]: {m: list(fold_values(rows, i["task"], m, SELECTION_METRIC[i["kind"]], protocol).values())
                        for m in display_order(plan)}
            for i in section if i.get("status") == "ok"}))
    if tests:
        table = pa.Table.from_pylist(tests)
        with atomic_path(out_dir / "tests.csv") as tmp:
            pacsv.write_csv(table, tmp)
    summary_lines = []
    if rows:
        summary_figure(out_dir / "figures" / "summary.png", panels, display_order(plan))
        summary_lines = ["![summary](figures/summary.png)", "",
                         "[Summary figure](figures/summary.png): the main metric (classification macro F1, "
                         "segmentation Dice) of every task and protocol; dots = folds, bars = 95% t intervals.", ""]
    done = len({(r["task"], r["protocol"], r["fold"], r["method"], r["seed"]) for r in rows})
    planned = sum(sum(len(seeds_run[p]) * (applies(p, i["kind"]) and i["task"] not in not_run.get(p, []))
                      for p in protocols) if i.get("status") == "ok" else 0
                  for i in infos) * len(plan["methods"]) * plan["folds"]
    lines = [
        "# ANAUS downstream benchmark", "",
        f"Methods: {', '.join(display_order(plan))} (reference: {plan['reference']}). "
        f"Cells finished: {done} of {planned}; failed: {len(failures)}.",
        f"Code revision `{info.get('code_revision')}`, created {info.get('created')}, "
        f"device {info['config'].get('device')}.", f"Command: `{info.get('command')}`", "",
        "Numbers are reported as measured. On the phantom they test the pipeline, "
        "not the method's value on real ultrasound.", "",
        "## Protocol", *_profile_lines(plan), "",
        "## Reference and FPNs", "", *reference_section(out_dir, plan),
        *pretraining_section(out_dir, plan),
        "## Tasks", *tasks_table(infos),
        "## Summary", "", *glance_table(plan, infos, rows, tests), *summary_lines,
        *body,
        "## Paired tests", "",
        "Each method against the reference, and the full method against each ablation, under every "
        f"protocol on the same folds (n = folds; seeds averaged per fold). With n = {plan['folds']} the "
        f"two-sided Wilcoxon signed-rank p cannot fall below {2 / 2 ** plan['folds']:.3g}; read the "
        "t-test p with the caveat that CV folds are not independent. No correction for multiple "
        "comparisons is applied. Shown: the main metric (macro F1 / Dice); every metric is in `tests.csv`.", "",
        *tests_table(tests),
        "## Backbones and provenance", *provenance_section(out_dir),
    ]
    if failures:
        lines += ["## Failed cells", ""] + [
            f"- {f['task']} / {f.get('protocol_name', 'finetune')} / {f['method']} / seed {f['seed']} / "
            f"fold {f['fold']}: {f.get('error')}" for f in failures] + [""]
    lines += ["## Files", "- `results.parquet`, `results.csv`: one row per task, protocol, fold, method, seed, "
              "metric.",
              "- `tests.csv`: paired tests; `folds/`: fold assignments; `cells/`: one file per cell;",
              "  `tasks/`: what each dataset yielded; `figures/`, `overlays/`: the images above.", ""]
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report
