"""What the held-out evaluation (``maskgen adapt``'s report, ``maskgen evaluate-adapt``) holds in
memory: the peak resident memory it adds, with the overlay picker riding along, as it is now
(per-class scores kept as Python floats, packed predictions in one array per class allocated
before the pass: ``ClassScores``, ``figures.ExamplePicker``) against what it did before (one
small tensor per batch and score, one small array per (frame, class) prediction, which sat
between the pass's large transient tensors and fragmented the heap).

Each arm runs in a fresh process (peak memory is per process), on the same synthetic held-out
frames, model (random weights of ``--model``), batch and device; both arms pick the same frames
for the overlays. Prints the peak added by each and the ratio.

    .venv/bin/python benchmarks/bench_eval_memory.py                 # tiny on CPU, 960 frames, batch 16
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
from lpsam_bench import heldout_bench_setup, step_bench_parser

from maskgen.lpsam.evaluate import MODES, ClassScores, heldout_predictions, overlap_scores
from maskgen.lpsam.figures import ExamplePicker


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def run_arm(arm: str, args) -> dict:
    """Evaluate the held-out frames as ``arm`` does; return the peak memory it added and the picks."""
    device, model, pairs = heldout_bench_setup(args)
    names = [c.name for c in pairs.classes]
    held = pairs.indices(held_out=True).tolist()
    start = peak_gib()
    if arm == "now":
        scores = {mode: ClassScores(names) for mode in MODES}
        picker = ExamplePicker(pairs)
        for preds, target, valid in heldout_predictions(model, pairs, MODES, device, args.batch_size):
            picker.observe(preds["latent"], target, valid)
            for mode in MODES:
                scores[mode].add(preds[mode], target, valid)
        picks = {n: [ex.index for ex in exs] for n, exs in picker.picks().items()}
    else:  # before: a tensor per batch and score, an array per (frame, class) prediction
        kept: dict = {mode: {n: [] for n in names} for mode in MODES}
        scored: dict = {n: [] for n in names}
        offset = 0
        for preds, target, valid in heldout_predictions(model, pairs, MODES, device, args.batch_size):
            for mode in MODES:
                for t, n in enumerate(names):
                    p, g = preds[mode][valid[:, t], t], target[valid[:, t], t]
                    kept[mode][n].append(overlap_scores(p, g)[0])
            for b in range(len(valid)):
                for t, n in enumerate(names):
                    if valid[b, t] and target[b, t].any():
                        dice = float(overlap_scores(preds["latent"][b, t][None], target[b, t][None])[0][0])
                        packed = np.packbits(preds["latent"][b, t].numpy(), axis=-1)
                        scored[n].append((dice, held[offset + b], packed))
            offset += len(valid)
        picks = {}
        for n, items in scored.items():
            items = sorted(items, key=lambda x: -x[0])
            picks[n] = [items[i][1] for i in sorted({0, (len(items) - 1) // 2, len(items) - 1})] if items else []
    return {"added_gib": peak_gib() - start, "frames": len(held), "picks": picks}


def main() -> None:
    ap = step_bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=480, help="held-out frames per synthetic dataset")
    ap.add_argument("--arm", choices=["now", "before"], help="(internal) run one arm in this process")
    ap.set_defaults(batch_size=16)  # the evaluation's own batch
    args = ap.parse_args()
    if args.arm:
        print(json.dumps(run_arm(args.arm, args)))
        return
    results = {}
    for arm in ("before", "now"):
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--arm", arm], check=True,
                             capture_output=True, text=True).stdout
        results[arm] = json.loads(out.strip().splitlines()[-1])
    if results["before"]["picks"] != results["now"]["picks"]:
        raise SystemExit("the two arms picked different overlay frames")
    before, now = results["before"]["added_gib"], results["now"]["added_gib"]
    print(f"{args.model} on {args.device}, {results['now']['frames']} held-out frames, batch {args.batch_size}, "
          f"prompts {', '.join(MODES)}, overlay picker on")
    print(f"  peak memory added, one small array per score and prediction (before): {before:.2f} GiB")
    print(f"  peak memory added, floats and one array per class (now):              {now:.2f} GiB  "
          f"({before - now:.2f} GiB less)")


if __name__ == "__main__":
    main()
