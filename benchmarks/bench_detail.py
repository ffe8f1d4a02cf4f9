"""What the detail branch (``maskgen adapt --detail-channels``) costs: a phase-1 training step and
latent-prompt inference, with and without it, and with its pyramid (``--detail-levels``), in
the same process.

All arms are the same model size and seed, on the same batch; only ``detail_channels`` (and
``detail_levels``) differ. Prints seconds per step / frames per second and the ratios against
the plain model and, for the pyramid, against the one-level branch.

    .venv/bin/python benchmarks/bench_detail.py                       # tiny on CPU
    .venv/bin/python benchmarks/bench_detail.py --model vit_b --device cuda --channels 32 --scale 1
"""

from __future__ import annotations

from dataclasses import replace

from lpsam_bench import step_bench_parser, step_bench_setup, time_config


def main() -> None:
    ap = step_bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=16, help="detail_channels of the measured arm")
    ap.add_argument("--scale", type=int, default=2, help="detail_scale of the measured arm")
    ap.add_argument("--levels", type=int, default=3, help="detail_levels of the pyramid arm (1: no such arm)")
    args = ap.parse_args()
    device, dtype, base, pairs, batch = step_bench_setup(args)
    print(f"LP-SAM {args.model} on {device} ({'bf16 autocast' if dtype else 'fp32'}), batch {args.batch_size}")
    results = {}
    arms = {"plain": replace(base, detail_channels=0, detail_scale=1),
            "detail": replace(base, detail_channels=args.channels, detail_scale=args.scale)}
    if args.levels > 1:
        arms["pyramid"] = replace(arms["detail"], detail_levels=args.levels)
    for arm, config in arms.items():
        model, seconds = time_config(config, pairs, batch, device, dtype, args.repeats)
        n_detail = sum(p.numel() for p in model.adapter.detail.parameters()) if config.detail_channels else 0
        train_s, infer_s = seconds["phase1"], seconds["inference"]
        results[arm] = (train_s, infer_s)
        print(f"{arm:7s} (detail_channels {config.detail_channels}, scale {config.detail_scale}, levels "
              f"{config.detail_levels}, mask logits "
              f"{config.mask_size}^2, +{n_detail:,} params): phase-1 step {train_s * 1e3:8.1f} ms | "
              f"inference {args.batch_size / infer_s:8.1f} frames/s")
    (t0, i0), (t1, i1) = results["plain"], results["detail"]
    print(f"ratio with/without the detail branch: training step {t1 / t0:.2f}x, inference time {i1 / i0:.2f}x")
    if "pyramid" in results:
        t2, i2 = results["pyramid"]
        print(f"ratio pyramid ({args.levels} levels) / one level: training step {t2 / t1:.2f}x, "
              f"inference time {i2 / i1:.2f}x; against no branch {t2 / t0:.2f}x, {i2 / i0:.2f}x")


if __name__ == "__main__":
    main()
