"""Mask generation speed: frames/s of LP-SAM + post-processing, and of the whole store job.

CPU: the ``tiny`` LP-SAM (random weights: speed does not depend on them) at several batch
sizes, then ``run_mask_job`` end to end (reading, letter-boxing, prediction, post-processing,
Zarr writes); ratios are against batch size 1 in the same run. GPU (when CUDA is present):
``vit_b`` LP-SAM in bf16 at several batch sizes, against batch size 1. Frames are synthetic.

    .venv/bin/python benchmarks/bench_maskgen.py [--frames 32] [--batch-sizes 1,4,8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maskgen.common.devices import synchronize
from maskgen.datasets.frames import Frame, FrameRef
from maskgen.generate.inference import predict_batch
from maskgen.generate.postprocess import PostprocessConfig, postprocess_batch


def synthetic_frames(n: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """(n, size, size) uint8 speckle with bright elliptical structures."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        img = rng.gamma(2.0, 18.0, (size, size))
        for _ in range(3):
            cy, cx, ry, rx = rng.uniform(0.2, 0.8, 2).tolist() + rng.uniform(0.05, 0.2, 2).tolist()
            img[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] += 90
        out[i] = np.clip(img, 0, 255)
    return out


class ArrayReader:
    def __init__(self, frames: np.ndarray):
        self.frames, self.problems = frames, []

    def refs(self):
        return [FrameRef("bench", f"{i:05d}.png", 0, "g") for i in range(len(self.frames))]

    def load(self, ref):
        return Frame(ref, self.frames[int(ref.source[:5])])


@dataclass(frozen=True)
class ArrayReaderSpec:
    n: int
    dataset: str = "bench"

    def open(self):
        return ArrayReader(synthetic_frames(self.n))


def frames_per_s(predictor, frames: np.ndarray, batch: int, device, post: PostprocessConfig | None) -> float:
    """Frames/s of prediction (+ post-processing unless ``post`` is None) over ``frames``."""
    predict_batch(predictor, frames[:batch], device, frames.shape[-1])  # warm-up
    synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, len(frames), batch):
        probs, scores = predict_batch(predictor, frames[start:start + batch], device, frames.shape[-1])
        if post is not None:
            postprocess_batch(probs, scores, post)
    synchronize(device)
    return len(frames) / (time.perf_counter() - t0)


def sweep(name: str, predictor, frames, batches, device, post) -> None:
    for label, p in (("predict", None), ("predict+post", post)):
        base = None
        for b in batches:
            fps = frames_per_s(predictor, frames, b, device, p)
            base = base or fps
            print(f"{name} {label:12s} batch {b:3d}: {fps:8.2f} frames/s  (x{fps / base:.2f} vs batch {batches[0]})")


def cpu_part(args, post) -> None:
    from maskgen.generate.job import MaskJob, PredictorSpec, run_mask_job
    from maskgen.lpsam import load_predictor
    from maskgen.lpsam.testing import make_random_adapt_dir

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    frames = synthetic_frames(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        adapt = make_random_adapt_dir(Path(tmp) / "lpsam")
        predictor = load_predictor(adapt, device)
        print(f"CPU, tiny LP-SAM, {args.threads} thread(s), {args.frames} frames, "
              f"T={predictor.num_candidates} candidates, K={post.k}")
        sweep("cpu tiny", predictor, frames, args.batch_sizes, device, post)
        job = MaskJob(out=str(Path(tmp) / "store"), reader=ArrayReaderSpec(args.frames),
                      predictor=PredictorSpec(str(adapt)), post=post, batch_size=max(args.batch_sizes),
                      chunk=16, device="cpu")
        summary = run_mask_job(job, progress=False)
        print(f"cpu tiny maskgen run (batch {job.batch_size}, end to end): "
              f"{summary.frames / summary.seconds:.2f} frames/s, {summary.masks / summary.frames:.1f} masks/frame")


def gpu_part(args, post, device) -> None:
    from maskgen.lpsam import build_lpsam, get_config
    from maskgen.lpsam.predictor import MaskPredictor

    model = build_lpsam(get_config("vit_b"), 5)
    meta = {"classes": [{"name": f"class{i}"} for i in range(5)]}
    predictor = MaskPredictor(model, meta, "0" * 64, device)
    frames = synthetic_frames(args.gpu_frames)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"{name}, vit_b LP-SAM (random weights) in bf16, "
          f"{args.gpu_frames} frames")
    sweep("gpu vit_b", predictor, frames, args.gpu_batch_sizes, device, post)


def main() -> None:
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch-sizes", type=ints, default=[1, 4, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu-frames", type=int, default=256)
    parser.add_argument("--gpu-batch-sizes", type=ints, default=[1, 8, 32, 64])
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    post = PostprocessConfig(k=16)
    if not args.skip_cpu:
        cpu_part(args, post)
    if torch.cuda.is_available():
        gpu_part(args, post, torch.device("cuda", torch.cuda.current_device()))
    else:
        print("gpu vit_b: skipped (no CUDA device)")


if __name__ == "__main__":
    main()
