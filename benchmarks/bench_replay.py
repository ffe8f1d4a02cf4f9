"""What phase 2's defaults cost (``maskgen adapt --train-decoder --prompt-replay 1``): one phase-2
training step with the decoder frozen, trained on the latent tokens alone, and trained with phase
1's ground-truth prompts replayed, in the same process.

All arms are the same model (the config's default detail branch), seed and batch; only the
phase-2 settings differ. Prints milliseconds per step and the ratio against the frozen decoder.

    .venv/bin/python benchmarks/bench_replay.py                        # tiny on CPU
    .venv/bin/python benchmarks/bench_replay.py --model vit_b --device cuda
"""

from __future__ import annotations

import torch
from lpsam_bench import step_bench_parser, step_bench_setup

from maskgen.common.devices import timed
from maskgen.lpsam.model import build_lpsam
from maskgen.lpsam.train import PhaseSettings, phase2_loss, set_trainable

ARMS = {
    "frozen decoder": PhaseSettings(steps=1, lr=1e-3, balanced_bce=True),
    "decoder trained, no replay": PhaseSettings(steps=1, lr=1e-3, balanced_bce=True, train_decoder=True),
    "decoder trained + replay 1": PhaseSettings(steps=1, lr=1e-3, balanced_bce=True, train_decoder=True,
                                                prompt_replay=1.0),
}


def main() -> None:
    args = step_bench_parser(__doc__.splitlines()[0]).parse_args()
    device, dtype, config, pairs, batch = step_bench_setup(args)
    print(f"LP-SAM {args.model} on {device} ({'bf16 autocast' if dtype else 'fp32'}), batch {args.batch_size}, "
          f"phase-2 step")
    torch.manual_seed(0)
    model = build_lpsam(config, len(pairs.classes)).to(device)
    seconds = {}
    for arm, settings in ARMS.items():
        params = set_trainable(model, 2, False, settings)

        def step(params=params, settings=settings):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = phase2_loss(model, *batch, settings, torch.Generator().manual_seed(1))
            loss.backward()
            for p in params:
                p.grad = None

        seconds[arm] = timed(step, device, args.repeats)
        print(f"{arm:28s} ({sum(p.numel() for p in params):>10,} trainable): {seconds[arm] * 1e3:8.1f} ms")
    base = seconds["frozen decoder"]
    print("ratio against the frozen decoder: " + ", ".join(f"{arm} {s / base:.2f}x" for arm, s in seconds.items()))


if __name__ == "__main__":
    main()
