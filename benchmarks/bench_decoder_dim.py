"""What a wider mask decoder and latent prompt engine (``maskgen adapt --decoder-dim``), or a wider
image encoder (``--encoder-dim``), costs: a phase-1 step, a phase-2 step (decoder trained, prompts
replayed: the default) and latent-prompt inference of ``tiny`` at its widths (64) and wider, in the
same process.

The arms share the seed and batch; each differs from the default in one width only
(``with_decoder_dim``: SAM's transformer_dim, the encoder neck's output, the decoder's and LPE's MLPs
at 4x; ``with_encoder_dim``: the ViT's embed_dim). Prints seconds per step / frames per second, the
trainable parameters and the ratios wide / default.

    .venv/bin/python benchmarks/bench_decoder_dim.py                    # tiny on CPU: decoder 64 vs 128
    .venv/bin/python benchmarks/bench_decoder_dim.py --encoder-dim 128  # and the encoder 64 vs 128
    .venv/bin/python benchmarks/bench_decoder_dim.py --device cuda --dim 256
"""

from __future__ import annotations

from lpsam_bench import step_bench_parser, step_bench_setup, time_config

from maskgen.lpsam.config import with_decoder_dim, with_encoder_dim
from maskgen.lpsam.model import count_params


def main() -> None:
    ap = step_bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=128, help="decoder width of the wide-decoder arm")
    ap.add_argument("--encoder-dim", type=int, help="also time an arm with the image encoder this wide")
    args = ap.parse_args()
    device, dtype, base, pairs, batch = step_bench_setup(args)
    print(f"LP-SAM {args.model} on {device} ({'bf16 autocast' if dtype else 'fp32'}), batch {args.batch_size}")
    arms = {"default": base, f"decoder {args.dim}": with_decoder_dim(base, args.dim)}
    if args.encoder_dim:
        arms[f"encoder {args.encoder_dim}"] = with_encoder_dim(base, args.encoder_dim)
    results = {}
    for arm, config in arms.items():
        model, seconds = time_config(config, pairs, batch, device, dtype, args.repeats, phase2=True)
        encoder = count_params(model.image_encoder)
        decoder = count_params(model.mask_decoder) + count_params(model.lpe)
        results[arm] = seconds
        print(f"{arm:12s} (encoder {config.embed_dim} wide, {encoder:,} params; decoder {config.prompt_dim} wide, "
              f"decoder + LPE {decoder:,} params): phase-1 step {seconds['phase1'] * 1e3:8.1f} ms | "
              f"phase-2 step {seconds['phase2'] * 1e3:8.1f} ms | inference {args.batch_size / seconds['inference']:8.1f} frames/s")
    for arm in list(arms)[1:]:
        ratios = {k: results[arm][k] / results["default"][k] for k in results["default"]}
        print(f"ratio {arm} / default: phase-1 step {ratios['phase1']:.2f}x, phase-2 step "
              f"{ratios['phase2']:.2f}x, inference time {ratios['inference']:.2f}x")


if __name__ == "__main__":
    main()
