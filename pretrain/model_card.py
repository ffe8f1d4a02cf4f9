"""The model card (README.md) of an HF-format export, and the measured results it quotes.

``sweep_results`` reads an ``evaluate sweep`` output folder (``results.parquet`` and
``backbones.json``, its documented files) and summarises one method per task and metric over
folds, next to the sweep's reference (``random``); ``model_card`` renders the card with the
Hub's YAML front matter, usage, the provenance chain and those results.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = "random"


def _matching_methods(backbones: list[dict], run_dir: Path) -> list[str]:
    """Methods of a sweep whose backbone was exported from ``run_dir`` (sidecar ``run_dir``)."""
    here = run_dir.resolve()
    return [b["name"] for b in backbones
            if (b.get("provenance") or {}).get("run_dir") and Path(b["provenance"]["run_dir"]).resolve() == here]


def _fold_stats(values: dict[int, list[float]]) -> dict[str, float]:
    """fold -> values over seeds  ->  mean and sample std (ddof 1) over folds of the seed means."""
    per_fold = np.array([np.mean(v) for _, v in sorted(values.items())], dtype=np.float64)
    return {"mean": float(per_fold.mean()), "std": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else math.nan,
            "folds": len(per_fold)}


def sweep_results(sweep_dir: Path, run_dir: Path, method: str | None = None) -> tuple[list[dict], str]:
    """Rows (task, metric, mean, std, folds, reference_mean, reference_std) of ``method`` in the
    sweep at ``sweep_dir``, and a one-line description of the source.

    ``method`` defaults to the sweep's one method whose backbone came from ``run_dir``.
    Raises FileNotFoundError / ValueError (naming the choices) when that is not unique.
    """
    import pyarrow.parquet as pq

    results, listing = sweep_dir / "results.parquet", sweep_dir / "backbones.json"
    if not results.is_file() or not listing.is_file():
        raise FileNotFoundError(f"--results {sweep_dir}: no results.parquet + backbones.json; "
                                "give the --out folder of a finished `evaluate sweep`")
    rows = pq.read_table(results, columns=["task", "fold", "method", "metric", "value"]).to_pylist()
    methods = sorted({r["method"] for r in rows})
    if method is None:
        found = _matching_methods(json.loads(listing.read_text()), run_dir)
        if len(found) != 1:
            what = "no method" if not found else f"methods {found}"
            raise ValueError(f"--results {sweep_dir}: {what} of the sweep came from {run_dir}; "
                             f"name one with --method (the sweep has {', '.join(methods)})")
        method = found[0]
    if method not in methods:
        raise ValueError(f"--method {method!r} is not in {results} (methods: {', '.join(methods)})")
    cells: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    for r in rows:
        cells.setdefault((r["task"], r["metric"], r["method"]), {}).setdefault(r["fold"], []).append(r["value"])
    out = []
    for (task, metric, m), values in sorted(cells.items()):
        if m != method:
            continue
        ref = cells.get((task, metric, REFERENCE))
        ref_stats = _fold_stats(ref) if ref and method != REFERENCE else {"mean": None, "std": None}
        out.append({"task": task, "metric": metric, **_fold_stats(values),
                    "reference_mean": ref_stats["mean"], "reference_std": ref_stats["std"]})
    return out, f"method `{method}` of the sweep at `{sweep_dir.resolve()}`"


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" + ("" if std is None or math.isnan(std) else f" ± {100 * std:.1f}")


def results_section(results: list[dict], source: str | None) -> list[str]:
    if not results:
        return ["No downstream results were given: export with `--results SWEEP_DIR` (an "
                "`evaluate sweep` output folder) to quote them here."]
    lines = [f"From {source}: mean ± sample std over cross-validation folds (x100), next to the "
             f"sweep's `{REFERENCE}`-initialisation reference.", "",
             f"| task | metric | this backbone | {REFERENCE} | folds |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['metric']} | {_pm(r['mean'], r['std'])} | "
              f"{_pm(r['reference_mean'], r['reference_std'])} | {r['folds']} |" for r in results]
    return lines


def model_card(provenance: dict[str, Any], hf_config: dict[str, Any], results: list[dict]) -> str:
    """README.md text of the folder: front matter, use, input, provenance, configuration, results."""
    arch, step = provenance["arch"], provenance["step"]
    pcfg = hf_config["pretrained_cfg"]
    store = provenance.get("store") or {}
    size = pcfg["input_size"]
    front = ["---", "library_name: timm", "pipeline_tag: image-feature-extraction", "license: other",
             "tags:", "- image-feature-extraction", "- timm", "- ultrasound", "- self-supervised", "- anaus", "---"]
    use = ["```python", "import timm, torch", "",
           'model = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True)  # timm with local-dir: (tested: 1.0.31)',
           f"features = model(torch.randn(1, 3, {size[1]}, {size[2]}))   # (1, {hf_config['num_features']})",
           'clf = timm.create_model("local-dir:PATH/TO/THIS/FOLDER", pretrained=True, num_classes=3)  # your head',
           "cfg = timm.data.resolve_data_config({}, model=model)  # input size, mean/std from config.json",
           "transform = timm.data.create_transform(**cfg)", "",
           "# older timm: the weights file with this folder's settings",
           f'model = timm.create_model("{arch}", pretrained=True, num_classes=0,',
           '                          pretrained_cfg_overlay=dict(file="PATH/TO/THIS/FOLDER/model.safetensors"))',
           "```"]
    chain = [
        ("weights (`model.safetensors`) sha256", provenance["weights_sha256"]),
        ("pre-training heads (`pretraining_heads.safetensors`) sha256", provenance["heads_sha256"]),
        ("pre-training step", step),
        ("mask store", store.get("path")),
        ("mask store manifest sha256", store.get("manifest_sha256")),
        ("mask store frames (usable)", f"{store.get('frames')} ({store.get('usable_frames')})"),
        ("LP-SAM checkpoint sha256 (made the masks)", provenance.get("lpsam_checkpoint_sha256")),
        ("pre-training code revision", provenance.get("run_code_revision")),
        ("export code revision", provenance.get("code_revision")),
        ("pre-training command", f"`{provenance.get('run_command')}`" if provenance.get("run_command") else None),
        ("run folder", provenance.get("run_dir")),
    ]
    lines = [
        *front, f"# ANAUS {arch} ultrasound backbone (pre-training step {step})", "",
        f"A timm `{arch}` backbone (no classifier: `num_classes` 0, {hf_config['num_features']} features) "
        "pre-trained with ANAUS (anatomy-anchored self-supervision: LP-SAM anatomy masks, an "
        "anatomy-separating alignment loss and core-region prediction) on B-mode ultrasound frames.", "",
        "## Use", "", *use, "",
        f"Input: grayscale B-mode frames in [0, 1] repeated to 3 channels, normalised with mean "
        f"{tuple(pcfg['mean'])} and std {tuple(pcfg['std'])}, at {size[1]} x {size[2]} pixels "
        f"(pre-training resolution; frames were letter-boxed, aspect kept).", "",
        "`pretraining_heads.safetensors` holds the FPN (`fpn.*`, torchvision `FeaturePyramidNetwork` keys), "
        "projector and predictor (`projector.*`, `predictor.*`) of the online network; its metadata "
        "gives their dimensions. They are not needed for fine-tuning.", "",
        "## Provenance", "", "| what | value |", "|---|---|",
        *[f"| {k} | {'—' if v is None else v} |" for k, v in chain], "",
        "The same chain is in `anaus_provenance.json`; the store's own `run.json` names the LP-SAM "
        "adaptation and the frames it read. The weights are derived from the datasets in the store: "
        "their licences apply.", "",
        "## Measured results", "", *results_section(results, provenance.get("results_source")), "",
        "## Pre-training configuration", "", "```json", json.dumps(provenance.get("config"), indent=2, sort_keys=True),
        "```", "",
    ]
    return "\n".join(lines)
