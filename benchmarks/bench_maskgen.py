"""Mask generation speed: frames/s of LP-SAM + post-processing, and of the whole store job.

CPU: the ``tiny`` LP-SAM (random weights: speed does not depend on them) at several batch
sizes, then ``run_mask_job`` end to end (reading, letter-boxing, prediction, post-processing,
Zarr writes); ratios are against batch size 1 in the same run. Then ``maskgen run`` end to
end with each post-processing path (``--postprocess frame``, the per-frame reference on the
host, vs ``batched``, tensor operations on the predictor's device), as frames/s and their
ratio, asserting that both write the same store. GPU (when CUDA is present): ``vit_b`` LP-SAM
in bf16 at several batch sizes, against batch size 1, and the end-to-end job (ViT-B, 256 px,
K = 16, random weights saved as an adaptation folder) with both paths. Frames are synthetic.
Candidates: frames/s of prediction + post-processing with each ``--proposals`` mode against
``latent`` in the same run (the CPU adaptation of ``--adapt``, e.g. the demo's runs/demo/lpsam,
so proposals survive their filters as they do on real frames; random weights otherwise).

    .venv/bin/python benchmarks/bench_maskgen.py [--frames 32] [--batch-sizes 1,4,8]
        [--skip-cpu] [--skip-sweep] [--gpu-e2e-frames 1024] [--gpu-e2e-batch 64] [--adapt DIR]
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


def stores_equal(a: Path, b: Path) -> bool:
    """The four arrays of two stores bitwise (NaN == NaN) and their manifest rows."""
    from maskgen.store import open_store

    x, y = open_store(a), open_store(b)
    for name in ("images", "masks", "scores", "counts"):
        u, v = x.group[name][:], y.group[name][:]
        if u.shape != v.shape or not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
            return False
    keep = ("frame_id", "row", "status", "mask_count")
    return [{k: r[k] for k in keep} for r in x.manifest.to_pylist()] == \
           [{k: r[k] for k in keep} for r in y.manifest.to_pylist()]


def end_to_end(name: str, adapt: Path, tmp: Path, n: int, batch: int, device: str, post: PostprocessConfig) -> None:
    """``run_mask_job`` over n synthetic frames with each post-processing path: frames/s, the
    ratio batched / frame, and whether the stores are identical. A short warm-up job first
    (the predictor stays cached in this process, as on a dask worker)."""
    from maskgen.generate.job import MaskJob, PredictorSpec, run_mask_job
    from maskgen.generate.postprocess_batched import POSTPROCESS_PATHS

    def job(out, frames, path):
        return MaskJob(out=str(out), reader=ArrayReaderSpec(frames), predictor=PredictorSpec(str(adapt)), post=post,
                       batch_size=batch, chunk=batch, device=device, postprocess=path)

    for path in POSTPROCESS_PATHS:
        run_mask_job(job(tmp / f"warm-{path}", batch, path), progress=False)
    fps = {}
    for path in POSTPROCESS_PATHS:
        summary = run_mask_job(job(tmp / f"e2e-{path}", n, path), progress=False)
        fps[path] = summary.frames / summary.seconds
        print(f"{name} maskgen run --postprocess {path:7s} (batch {batch}, {n} frames, end to end): "
              f"{fps[path]:8.2f} frames/s, {summary.masks / summary.frames:.1f} masks/frame")
    same = stores_equal(tmp / "e2e-frame", tmp / "e2e-batched")
    print(f"{name} batched / frame: x{fps['batched'] / fps['frame']:.2f}; stores identical: {same}")
    assert same, "the two post-processing paths wrote different stores"


def proposal_cost(name: str, adapt: Path, frames: np.ndarray, batch: int, device, post: PostprocessConfig) -> None:
    """Frames/s of prediction + post-processing per ``--proposals`` mode, against ``latent``."""
    from maskgen.lpsam import load_predictor
    from maskgen.lpsam.proposals import ProposalConfig

    base = None
    for mode in ("latent", "latent+boxes", "both"):
        predictor = load_predictor(adapt, device, proposals=ProposalConfig(mode=mode))
        fps = frames_per_s(predictor, frames, batch, device, post)
        base = base or fps
        print(f"{name} --proposals {mode:13s} T={predictor.num_candidates:3d}: {fps:8.2f} frames/s "
              f"(x{fps / base:.2f} vs latent)")


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
        if not args.skip_sweep:
            sweep("cpu tiny", predictor, frames, args.batch_sizes, device, post)
        job = MaskJob(out=str(Path(tmp) / "store"), reader=ArrayReaderSpec(args.frames),
                      predictor=PredictorSpec(str(adapt)), post=post, batch_size=max(args.batch_sizes),
                      chunk=16, device="cpu")
        summary = run_mask_job(job, progress=False)
        print(f"cpu tiny maskgen run (batch {job.batch_size}, end to end): "
              f"{summary.frames / summary.seconds:.2f} frames/s, {summary.masks / summary.frames:.1f} masks/frame")
        end_to_end("cpu tiny", adapt, Path(tmp), args.frames, max(args.batch_sizes), "cpu", post)
        proposal_cost("cpu tiny" + (f" ({args.adapt})" if args.adapt else " (random weights)"),
                      Path(args.adapt) if args.adapt else adapt, frames, max(args.batch_sizes), device, post)


def gpu_part(args, post, device) -> None:
    from maskgen.lpsam import build_lpsam, get_config
    from maskgen.lpsam.predictor import MaskPredictor

    model = build_lpsam(get_config(args.gpu_model), 5)
    meta = {"classes": [{"name": f"class{i}"} for i in range(5)]}
    predictor = MaskPredictor(model, meta, "0" * 64, device)
    frames = synthetic_frames(args.gpu_frames)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    tag = f"gpu {args.gpu_model}"
    print(f"{name}, {args.gpu_model} LP-SAM (random weights) in bf16, "
          f"{args.gpu_frames} frames")
    if not args.skip_sweep:
        sweep(tag, predictor, frames, args.gpu_batch_sizes, device, post)
    if args.gpu_e2e_frames:
        from maskgen.lpsam.artifacts import save_adapt_dir
        from maskgen.lpsam.testing import DEFAULT_CLASSES

        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            adapt = Path(tmp) / "lpsam"
            save_adapt_dir(adapt, build_lpsam(get_config(args.gpu_model), len(DEFAULT_CLASSES)).cpu(),
                           list(DEFAULT_CLASSES), None, {"note": f"random {args.gpu_model} weights for the benchmark"})
            end_to_end(f"{tag} ({name})", adapt, Path(tmp), args.gpu_e2e_frames, args.gpu_e2e_batch, str(device), post)


def main() -> None:
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch-sizes", type=ints, default=[1, 4, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu-frames", type=int, default=256)
    parser.add_argument("--gpu-batch-sizes", type=ints, default=[1, 8, 32, 64])
    parser.add_argument("--gpu-model", default="vit_b", help="LP-SAM size of the GPU section (tiny: to try it)")
    parser.add_argument("--gpu-device", default=None, help="run the GPU section on this device (e.g. cpu)")
    parser.add_argument("--gpu-e2e-frames", type=int, default=1024, help="frames of the GPU end-to-end job (0: skip)")
    parser.add_argument("--gpu-e2e-batch", type=int, default=64)
    parser.add_argument("--adapt", default=None, help="adaptation folder for the candidates' cost (default: random)")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true", help="only the end-to-end jobs")
    args = parser.parse_args()
    post = PostprocessConfig(k=16)
    if not args.skip_cpu:
        cpu_part(args, post)
    if args.gpu_device:
        gpu_part(args, post, torch.device(args.gpu_device))
    elif torch.cuda.is_available():
        gpu_part(args, post, torch.device("cuda", torch.cuda.current_device()))
    else:
        print("gpu vit_b: skipped (no CUDA device)")


if __name__ == "__main__":
    main()
