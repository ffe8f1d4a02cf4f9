"""Which optimiser recipe learns at a small batch? The measurement behind ``--recipe small-batch``.

Every candidate pre-trains from the same step-0 weights (same seed), on the same store, batch,
resolution, data order and number of steps; only the optimiser settings differ. Printed per
candidate: the pretext loss over the first and the last tenth of the steps (the objective
itself, measured on the training stream), the backbone's relative weight change
||w - w0|| / ||w0||, the mean |gamma| of the residual blocks' last BatchNorm (0 at step 0),
and, with ``--probe``, the online kNN probe before and after (a read-out, not the criterion).
The recipe is chosen by the pretext loss and weight motion, never by downstream scores.

    python benchmarks/bench_recipe.py --store runs/demo/store --steps 60 \\
        --probe busi-cls --probe-root runs/demo/phantom/busi
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.jsonl import read_records  # noqa: E402
from pretrain.loader import LoaderConfig  # noqa: E402
from pretrain.optim import RECIPES, OptimConfig  # noqa: E402
from pretrain.probe import ProbeConfig  # noqa: E402
from pretrain.step import ObjectiveConfig  # noqa: E402
from pretrain.train import RunConfig, run  # noqa: E402

CANDIDATES = {  # name -> OptimConfig fields (base lr is scaled by batch / 256 in every case)
    "paper (LARS, trust 1e-3)": RECIPES["paper"],
    "LARS, trust 5e-3": {**RECIPES["paper"], "trust_coeff": 5e-3},
    "LARS, trust 2e-2": {**RECIPES["paper"], "trust_coeff": 2e-2},
    "LARS, trust 5e-2": {**RECIPES["paper"], "trust_coeff": 5e-2},
    "small-batch (AdamW, 1e-3 at batch 16)": RECIPES["small-batch"],
}


def measure(store: Path, name: str, fields: dict, args, work: Path) -> dict:
    probe = ProbeConfig(task=args.probe, root=args.probe_root, every=10 ** 6) if args.probe else None
    cfg = RunConfig(
        objective=ObjectiveConfig(resolution=args.resolution),
        loader=LoaderConfig(batch_size=args.batch_size, cache="ram"),
        optim=OptimConfig(epochs=args.epochs, warmup_epochs=args.warmup_epochs, **fields),
        device="cpu", checkpoint_every=10 ** 6, max_steps=args.steps, probe=probe)
    out = work / name.split(" ")[0].replace(",", "") / str(abs(hash(name)))
    tic = time.perf_counter()
    run(store, out, cfg, seed=args.seed)
    seconds = time.perf_counter() - tic
    records = read_records(out / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    tenth = max(1, len(losses) // 10)
    probes = [r["probe/knn_acc"] for r in records if "probe/knn_acc" in r]
    last = [r for r in records if "backbone/rel_change" in r][-1]
    return {"recipe": name, "steps": len(losses), "loss_first": sum(losses[:tenth]) / tenth,
            "loss_last": sum(losses[-tenth:]) / tenth, "rel_change": last["backbone/rel_change"],
            "last_bn_gamma": last["backbone/last_bn_gamma"],
            "probe_step0": probes[0] if probes else None, "probe_last": probes[-1] if probes else None,
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=None, help="a mask store (default: a synthetic one)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=8, help="schedule length (steps beyond --steps unused)")
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--probe", default=None)
    parser.add_argument("--probe-root", default=None)
    parser.add_argument("--only", default=None, help="|-separated candidate name prefixes")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = args.store
        if store is None:
            from maskgen.store.testing import make_synthetic_store

            store = work / "store"
            make_synthetic_store(store, n=128, size=96, k=16, chunk=16)
        rows = []
        for name, fields in CANDIDATES.items():
            if args.only and not any(name.startswith(p) for p in args.only.split("|")):
                continue
            rows.append(measure(store, name, fields, args, work))
            r = rows[-1]
            print(f"{r['recipe']:<44} loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}  "
                  f"rel. weight change {r['rel_change']:.4f}  last-BN |gamma| {r['last_bn_gamma']:.4f}  "
                  + (f"probe {r['probe_step0']:.3f} -> {r['probe_last']:.3f}  " if r["probe_step0"] is not None else "")
                  + f"{r['seconds']:.0f} s", flush=True)
    base = rows[0]
    print("(the small-batch recipe is the candidate with the lowest pretext loss and clear weight motion)")
    print(f"\n(batch {args.batch_size}, {args.resolution} px, {base['steps']} steps, seed {args.seed}; "
          "loss = mean of the first / last tenth of the steps)")
    for r in rows[1:]:
        print(f"{r['recipe']:<44} weight change x{r['rel_change'] / max(base['rel_change'], 1e-12):.1f} "
              f"of the paper's; loss drop {base['loss_first'] - base['loss_last']:.3f} (paper) vs "
              f"{r['loss_first'] - r['loss_last']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
