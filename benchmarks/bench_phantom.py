"""Phantom benchmark: generator speed, Otsu-vs-truth Dice per anatomy class, speckle SNR
(and how far global intensity alone separates the downstream classes).

    .venv/bin/python benchmarks/bench_phantom.py [--frames 60] [--scenes 12]

Single-threaded (numpy/scipy FFT workers=1, torch 1 thread). Speed: frames/s of rendering
256x256 frames (video scenes, the common case) against the 100 frames/s target, and against a
baseline measured in the same run: the bare cost of drawing a complex Gaussian field and one
2-D FFT of the same size (the least any FFT-based speckle generator must do).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import fft as sfft  # noqa: E402

from maskgen.phantom.abdomen import abdomen_scene  # noqa: E402
from maskgen.phantom.cardiac import heart_scene  # noqa: E402
from maskgen.phantom.lung import lung_scene  # noqa: E402
from maskgen.phantom.quality import RAYLEIGH_SNR, otsu_dice, speckle_snr  # noqa: E402
from maskgen.phantom.scene import ROLE_IDS  # noqa: E402
from maskgen.phantom.softtissue import breast_scene, thyroid_scene  # noqa: E402

KINDS = {
    "thyroid (linear)": lambda r: thyroid_scene(r, 256, 256, "random", 10.0),
    "breast (linear)": lambda r: breast_scene(r, 256, 256, str(r.choice(["benign", "malignant"]))),
    "heart A4C (phased)": lambda r: heart_scene(r, 256, 256, "4ch"),
    "lung (convex)": lambda r: lung_scene(r, 256, 256, str(r.choice(["regular", "covid19", "pneumonia"]))),
    "abdomen (convex)": lambda r: abdomen_scene(r, 256, 256, "morisons_pouch"),
}


def bench_speed(frames: int) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"== generator speed, 256x256, one core ({frames} frames per kind, 1 scene per 12 frames)")
    total_t, total_cpu, total_n = 0.0, 0.0, 0
    for k, (name, make) in enumerate(KINDS.items()):
        rng = np.random.default_rng([7, k])
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        while n < frames:
            scene = make(rng)
            for i in range(min(12, frames - n)):
                scene.frame(i / 11)
                n += 1
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        total_t, total_cpu, total_n = total_t + dt, total_cpu + dc, total_n + n
        print(f"  {name:22s} {n / dt:7.1f} frames/s wall, {n / dc:7.1f} per CPU-second"
              f"  ({1000 * dc / n:.1f} ms CPU/frame incl. scene set-up)")
    fps, fps_cpu = total_n / total_t, total_n / total_cpu
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(frames):
        z = rng.standard_normal((2, 256, 256), dtype=np.float32)
        sfft.ifft2(sfft.fft2(z[0] + 1j * z[1], workers=1), workers=1)
    base, base_cpu = frames / (time.perf_counter() - t0), frames / (time.process_time() - c0)
    print(f"  all kinds              {fps:7.1f} frames/s wall, {fps_cpu:7.1f} per CPU-second"
          f"  (target 100: ratio {fps_cpu / 100:.2f})")
    print(f"  baseline noise+FFT2    {base:7.1f} frames/s wall, {base_cpu:7.1f} per CPU-second"
          f"  (generator / baseline = {fps_cpu / base_cpu:.2f})")
    print("  (CPU-seconds of this single-threaded process: the one-core rate even on a busy machine)")


def bench_otsu(scenes: int) -> None:
    print(f"== Otsu global threshold vs truth: Dice per anatomy class ({scenes} scenes per kind)")
    per_role: dict[str, list[float]] = {}
    for k, make in enumerate(KINDS.values()):
        rng = np.random.default_rng([11, k])
        for _ in range(scenes):
            scene = make(rng)
            image, st = scene.frame(0.3)
            anatomy = scene.anatomy(st)
            fov = scene.grid.fov
            for role, rid in ROLE_IDS.items():
                truth = anatomy == rid
                if truth.sum() >= 30:
                    per_role.setdefault(role, []).append(otsu_dice(image, truth, fov))
    for role, values in per_role.items():
        v = np.asarray(values)
        print(f"  {role:14s} Dice {v.mean():.3f} +- {v.std():.3f}  (n={v.size})")
    allv = np.concatenate([np.asarray(v) for v in per_role.values()])
    print(f"  mean over classes {np.mean([np.mean(v) for v in per_role.values()]):.3f}, "
          f"over all masks {allv.mean():.3f}")


def _histogram_features(image: np.ndarray, fov: np.ndarray) -> np.ndarray:
    v = image[fov].astype(np.float64)
    hist = np.histogram(v, bins=16, range=(0, 256))[0] / v.size
    return np.concatenate([hist, [v.mean() / 255, v.std() / 255, (v < 20).mean()]])


def _ridge_cv_accuracy(x: np.ndarray, y: np.ndarray, folds: int = 5) -> float:
    """Five-fold accuracy of a one-vs-rest ridge classifier on standardised features."""
    idx, classes, acc = np.arange(len(y)), np.unique(y), []
    for f in range(folds):
        test = idx % folds == f
        mu, sd = x[~test].mean(0), x[~test].std(0) + 1e-6
        z = np.c_[(x - mu) / sd, np.ones(len(y))]
        targets = np.stack([(y[~test] == c).astype(float) for c in classes], 1)
        w = np.linalg.solve(z[~test].T @ z[~test] + np.eye(z.shape[1]), z[~test].T @ targets)
        acc.append(float((classes[np.argmax(z[test] @ w, 1)] == y[test]).mean()))
    return float(np.mean(acc))


def bench_separability(scenes: int) -> None:
    print(f"== downstream labels vs global intensity: 5-fold linear probe on 19 histogram features"
          f" ({3 * scenes} scenes, chance 0.333)")
    tasks = {
        "busi benign/malignant/normal": lambda r, c: breast_scene(r, 200, 240, ("benign", "malignant", "normal")[c]),
        "pocus covid19/pneumonia/regular": lambda r, c: lung_scene(
            r, 200, 220, ("covid19", "pneumonia", "regular")[c], str(r.choice(["curvilinear", "linear"]))),
    }
    for k, (name, make) in enumerate(tasks.items()):
        rng = np.random.default_rng([13, k])
        feats, labels = [], []
        for i in range(3 * scenes):
            scene = make(rng, i % 3)
            image, _ = scene.frame(0.3)
            feats.append(_histogram_features(image, scene.grid.fov))
            labels.append(i % 3)
        print(f"  {name:32s} accuracy {_ridge_cv_accuracy(np.array(feats), np.array(labels)):.3f}")


def bench_snr() -> None:
    print("== speckle SNR (envelope mean/std, homogeneous tissue)")
    for kind in ("linear", "curvilinear", "phased"):
        values = [speckle_snr(seed, 256, kind) for seed in range(4)]
        print(f"  {kind:12s} {np.mean(values):.3f} +- {np.std(values):.3f}"
              f"  (Rayleigh {RAYLEIGH_SNR:.3f}, ratio {np.mean(values) / RAYLEIGH_SNR:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--scenes", type=int, default=12)
    args = parser.parse_args()
    bench_speed(args.frames)
    bench_otsu(args.scenes)
    bench_separability(4 * args.scenes)
    bench_snr()


if __name__ == "__main__":
    main()
