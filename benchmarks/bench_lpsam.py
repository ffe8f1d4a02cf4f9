"""LP-SAM inference speed: frames/s of the predictor (latent prompts, T masks per frame).

Baseline in the same run: decoding the T latent prompts frame by frame with segment_anything's
own ``MaskDecoder.predict_masks`` (one image embedding repeated per prompt, as ``Sam.forward``
does) against our batched decoder call. Prints frames/s and the ratio.

    .venv/bin/python benchmarks/bench_lpsam.py                 # tiny on CPU
    .venv/bin/python benchmarks/bench_lpsam.py --model vit_b --device cuda --batch-sizes 8,32,64
"""

from __future__ import annotations

import argparse

import torch

from maskgen.common.devices import autocast_dtype, resolve_device, timed
from maskgen.lpsam.config import get_config
from maskgen.lpsam.model import build_lpsam


def per_frame_decode(model, x):
    """Reference: SAM's predict_masks once per frame (embedding repeated per latent prompt)."""
    emb = model.encode(x)
    latent = model.lpe(emb, x, model.dense_pe())
    dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    outs = []
    for i in range(x.shape[0]):
        masks, iou = model.mask_decoder.predict_masks(emb[i:i + 1], model.dense_pe(), latent[i].unsqueeze(1),
                                                      dense.expand(latent.shape[1], -1, *emb.shape[-2:]))
        outs.append(masks[:, 0])
    return torch.stack(outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = autocast_dtype(device)
    torch.manual_seed(0)
    model = build_lpsam(get_config(args.model), args.classes).to(device).eval()
    s = model.config.input_size
    print(f"LP-SAM {args.model} on {device} ({'bf16 autocast' if dtype else 'fp32'}), {args.classes} latent prompts")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        x = model.preprocess(torch.randint(0, 256, (bs, s, s), dtype=torch.uint8, device=device))
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            fast = timed(lambda x=x: model.predict_latent(x), device, args.repeats)
            ref = timed(lambda x=x: per_frame_decode(model, x), device, args.repeats)
            a, _ = model.predict_latent(x)
            b = per_frame_decode(model, x)
        err = (a[:, :: 1].float() - b.float()).abs().max().item()
        print(f"batch {bs:4d}: batched {bs / fast:9.1f} frames/s | per-frame SAM decoder {bs / ref:9.1f} frames/s "
              f"| ratio {ref / fast:5.2f}x | max |logit diff| {err:.2e}")


if __name__ == "__main__":
    main()
