"""What the held-out evaluation of ``maskgen adapt`` (and ``maskgen evaluate-adapt``) costs: the
latent prompts, one ground-truth click and the ground-truth box scored in one pass that encodes
each frame once (``maskgen.lpsam.evaluate.evaluate``), against one pass per prompt kind, each
encoding the frames again (what the evaluation did before), in the same process.

Same model (random weights of ``--model``), synthetic held-out frames, batch and device in both
arms; the per-class reports must be equal. Prints seconds per arm and the ratio.

    .venv/bin/python benchmarks/bench_heldout_eval.py                        # tiny on CPU
    .venv/bin/python benchmarks/bench_heldout_eval.py --model vit_b --device cuda
"""

from __future__ import annotations

from lpsam_bench import heldout_bench_setup, step_bench_parser

from maskgen.common.devices import timed
from maskgen.lpsam.evaluate import MODES, class_report, evaluate, heldout_batches


def main() -> None:
    ap = step_bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48, help="held-out frames per synthetic dataset")
    args = ap.parse_args()
    device, model, pairs = heldout_bench_setup(args)
    names = [c.name for c in pairs.classes]

    def per_kind() -> dict:
        return {mode: class_report(heldout_batches(model, pairs, mode, device, args.batch_size), names)
                for mode in MODES}

    def one_pass() -> dict:
        return evaluate(model, pairs, device, args.batch_size)

    if per_kind() != one_pass():
        raise SystemExit("the one-pass evaluation differs from the pass per prompt kind")
    held = int(pairs.held_out.sum())
    t_per_kind = timed(per_kind, device, args.repeats)
    t_one = timed(one_pass, device, args.repeats)
    print(f"{args.model} on {device}, {held} held-out frames, batch {args.batch_size}, prompts {', '.join(MODES)}")
    print(f"  one pass per prompt kind (each encodes): {t_per_kind:.2f} s")
    print(f"  one pass, frames encoded once:           {t_one:.2f} s  ({t_one / t_per_kind:.2f} x)")


if __name__ == "__main__":
    main()
