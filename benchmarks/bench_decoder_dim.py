"""What a wider mask decoder and latent prompt engine (``maskgen adapt --decoder-dim``) costs: a
phase-1 step, a phase-2 step (decoder trained, prompts replayed: the default) and latent-prompt
inference of ``tiny`` at its width (64) and at ``--dim``, in the same process.

Both arms are the same encoder, seed and batch; only the decoder width differs (``with_decoder_dim``:
SAM's transformer_dim, the encoder neck's output, the decoder's and LPE's MLPs at 4x). Prints
seconds per step / frames per second, the trainable parameters and the ratios wide / default.

    .venv/bin/python benchmarks/bench_decoder_dim.py                    # tiny on CPU, 64 vs 128
    .venv/bin/python benchmarks/bench_decoder_dim.py --device cuda --dim 256
"""

from __future__ import annotations

from lpsam_bench import step_bench_parser, step_bench_setup, time_config

from maskgen.lpsam.config import with_decoder_dim
from maskgen.lpsam.model import count_params


def main() -> None:
    ap = step_bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=128, help="decoder width of the wide arm")
    args = ap.parse_args()
    device, dtype, base, pairs, batch = step_bench_setup(args)
    print(f"LP-SAM {args.model} on {device} ({'bf16 autocast' if dtype else 'fp32'}), batch {args.batch_size}")
    results = {}
    for arm, config in {"default": base, "wide": with_decoder_dim(base, args.dim)}.items():
        model, seconds = time_config(config, pairs, batch, device, dtype, args.repeats, phase2=True)
        decoder = count_params(model.mask_decoder) + count_params(model.lpe)
        results[arm] = seconds
        print(f"{arm:7s} (decoder width {config.prompt_dim}, decoder + LPE {decoder:,} params): "
              f"phase-1 step {seconds['phase1'] * 1e3:8.1f} ms | phase-2 step {seconds['phase2'] * 1e3:8.1f} ms | "
              f"inference {args.batch_size / seconds['inference']:8.1f} frames/s")
    ratios = {k: results["wide"][k] / results["default"][k] for k in results["default"]}
    print(f"ratio wide ({args.dim}) / default: phase-1 step {ratios['phase1']:.2f}x, phase-2 step "
          f"{ratios['phase2']:.2f}x, inference time {ratios['inference']:.2f}x")


if __name__ == "__main__":
    main()
