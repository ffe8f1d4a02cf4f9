"""Pre-training throughput: this step vs the main-branch step, a naive one that reruns the
backbone per scale, and the paper's reference implementation.

Prints training pairs/s at a few (batch, resolution) settings on CPU for the lean and naive
steps and their ratio (asserting equal losses), the CPU step at batch 8 / 224 px on
``--cpu-threads`` (2) threads: before (the main-branch step: every FPN map in full, contiguous
tensors) vs after (``pretrain.fpn_pool``, channels-last) vs the paper's reference step
(``benchmarks/paper_reference.py``; needs a copy of github.com/zhcz328/ANAUS via
``--reference PATH`` or ``ANAUS_REFERENCE``), the loader's throughput against the step's
consumption (asserting the loader is >= 5x faster than the step), and the peak memory of the
process. With CUDA present, also pairs/s in fp32 vs bf16 + channels_last (+ torch.compile).

    .venv/bin/python benchmarks/bench_pretrain.py [--quick] [--threads N] [--reference PATH]
"""

from __future__ import annotations

import argparse
import copy
import math
import resource
import sys
import tempfile
import time

import torch

from maskgen.common.devices import synchronize
from maskgen.store.testing import make_synthetic_store, synthetic_frames
from pretrain.model import (
    ModelConfig,
    OnlineNetwork,
    TargetNetwork,
    build_online,
    build_target,
    ema_update,
    through_valid_rows,
    valid_rows,
)
from pretrain.optim import OptimConfig, build_optimizer
from pretrain.step import ObjectiveConfig, compute_loss, prepare_inputs


class NaiveOnline(OnlineNetwork):
    """The paper code's pattern: the backbone + FPN rerun once for every pooling scale."""

    def forward(self, x, matrices):
        out = []
        for s, mat in enumerate(matrices):
            fmap = self.encoder(x)[s]
            z = self.embed([fmap], [mat])[0]  # draws without anatomy skip the MLPs, as in the step
            out.append(through_valid_rows(self.predictor, z.flatten(0, 1), valid_rows(mat)).view_as(z))
        return out


class NaiveTarget(TargetNetwork):
    def forward(self, x, matrices):
        return [self.embed([self.encoder(x)[s]], [mat])[0] for s, mat in enumerate(matrices)]


class MainOnline(OnlineNetwork):
    """The main-branch step before ``pretrain.fpn_pool``: every FPN map in full, then pooled."""

    def forward(self, x, matrices):
        return [through_valid_rows(self.predictor, z.flatten(0, 1), valid_rows(mat)).view_as(z)
                for z, mat in zip(self.embed(self.encoder(x), matrices), matrices, strict=True)]


class MainTarget(TargetNetwork):
    def forward(self, x, matrices):
        return self.embed(self.encoder(x), matrices)


def main_copy(online, target):
    on, tg = copy.deepcopy(online), copy.deepcopy(target)
    on.__class__, tg.__class__ = MainOnline, MainTarget
    return on, tg


def naive_copy(online, target):
    on, tg = copy.deepcopy(online), copy.deepcopy(target)
    on.__class__, tg.__class__ = NaiveOnline, NaiveTarget
    return on, tg


def time_steps(online, target, batches, cfg, steps, device, amp=None, channels_last=False):
    """Seconds per step (forward + backward + LARS) and the first step's loss."""
    opt = build_optimizer(online, OptimConfig(), 0.01)
    first, times = None, []
    for i in range(steps + 1):
        frames, masks = batches[i % len(batches)]
        gen = torch.Generator(device=device).manual_seed(i)
        inputs = prepare_inputs(frames, masks, cfg, gen)
        if channels_last:
            inputs.images = inputs.images.contiguous(memory_format=torch.channels_last)
            inputs.target_images = inputs.target_images.contiguous(memory_format=torch.channels_last)
        synchronize(device)
        tic = time.perf_counter()
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss, _ = compute_loss(online, target, inputs, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        synchronize(device)
        if i == 0:
            first = value
        else:  # step 0 is warm-up
            times.append(time.perf_counter() - tic)
    return sum(times) / len(times), first


def device_batches(store, batch, device, n=2):
    from pretrain.loader import FrameStream, LoaderConfig
    from pretrain.train import batch_to_device

    stream = FrameStream(store, LoaderConfig(batch_size=batch, cache="ram"))
    stream.set_position(0, 0)
    out = []
    for b in stream:
        out.append(batch_to_device(b, device))
        if len(out) == n:
            break
    return out


def bench_lean_vs_naive(store, settings, steps):
    print("== CPU: lean (backbone once per view) vs naive (backbone once per scale), resnet18, 4 scales")
    print(f"{'batch':>5} {'res':>4} {'lean pairs/s':>13} {'naive pairs/s':>14} {'ratio':>6}  loss(lean == naive)")
    cpu = torch.device("cpu")
    step_s = {}
    for batch, res in settings:
        cfg = ObjectiveConfig(resolution=res)
        batches = device_batches(store, batch, cpu)
        torch.manual_seed(0)
        online = build_online(ModelConfig())
        target = build_target(online)
        naive_on, naive_tg = naive_copy(online, target)
        t_lean, l_lean = time_steps(online, target, batches, cfg, steps, cpu)
        t_naive, l_naive = time_steps(naive_on, naive_tg, batches, cfg, steps, cpu)
        # equal up to float rounding (the lean step pools before the FPN's output convolutions)
        assert math.isclose(l_lean, l_naive, rel_tol=1e-5), f"losses differ: lean {l_lean!r} vs naive {l_naive!r}"
        print(f"{batch:>5} {res:>4} {batch / t_lean:>13.2f} {batch / t_naive:>14.2f} {t_naive / t_lean:>6.2f}  {l_lean:.6f}")
        step_s[(batch, res)] = t_lean
    return step_s


def cpu_step_times(online, target, frames, masks, cfg, steps, channels_last):
    """(wall s, CPU s) per step (views + forward + backward + LARS + EMA) and the first step's
    loss, on the CPU; step 0 is warm-up. CPU seconds are this process's, so they stay
    meaningful when other processes share the cores (wall / CPU near the thread count)."""
    if channels_last:
        online = online.to(memory_format=torch.channels_last)
        target = target.to(memory_format=torch.channels_last)
    opt = build_optimizer(online, OptimConfig(), 0.01)
    first, walls, cpus = None, [], []
    for i in range(steps + 1):
        tic, cpu = time.perf_counter(), time.process_time()
        inputs = prepare_inputs(frames, masks, cfg, torch.Generator().manual_seed(i))
        if channels_last:
            inputs.images = inputs.images.contiguous(memory_format=torch.channels_last)
            inputs.target_images = inputs.target_images.contiguous(memory_format=torch.channels_last)
        loss, _ = compute_loss(online, target, inputs, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(target, online, 0.99)
        value = float(loss.detach())
        if i == 0:
            first = value
        else:
            walls.append(time.perf_counter() - tic)
            cpus.append(time.process_time() - cpu)
    return sum(walls) / len(walls), sum(cpus) / len(cpus), first


def bench_cpu_step(batch, res, threads, steps, reference, ref_steps):
    """Before (main-branch step) vs after (this step) vs the paper's reference, one process."""
    before_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    print(f"== CPU step, resnet18, batch {batch}, {res} px, {threads} torch threads "
          f"(wall s/step; CPU s/step of this process in brackets)")
    images, masks, _ = synthetic_frames(batch, 256, 16, 0)
    frames, masks = torch.from_numpy(images), torch.from_numpy(masks)
    cfg = ObjectiveConfig(resolution=res)
    online = build_online(ModelConfig(), seed=0)
    target = build_target(online)
    rows = {}
    old_on, old_tg = main_copy(online, target)
    rows["before: main-branch step (full FPN maps, contiguous)"] = cpu_step_times(
        old_on, old_tg, frames, masks, cfg, steps, channels_last=False)
    rows["after: pooled FPN outputs + channels-last"] = cpu_step_times(
        online, target, frames, masks, cfg, steps, channels_last=True)
    (w0, c0, l0), (w1, c1, l1) = rows.values()
    assert math.isclose(l0, l1, rel_tol=1e-5), f"losses differ: before {l0!r} vs after {l1!r}"
    ref_row = None
    if reference is None:
        print("  paper reference: not run (pass --reference PATH or set ANAUS_REFERENCE to a copy of "
              "github.com/zhcz328/ANAUS)")
    elif not reference.exists():
        print(f"  paper reference: {reference} does not exist; not run")
    elif res != 224:
        print("  paper reference: not run (its pooling sizes 7/14/28/56 need 224 px)")
    else:
        from paper_reference import ReferenceStep

        ref = ReferenceStep(reference, batch)
        inputs = ReferenceStep.inputs(frames, masks, res)
        walls, cpus = [], []
        for i in range(ref_steps + 1):
            tic, cpu = time.perf_counter(), time.process_time()
            value = ref.step(*inputs)
            if i:
                walls.append(time.perf_counter() - tic)
                cpus.append(time.process_time() - cpu)
            assert math.isfinite(value), f"reference loss {value}"
        ref_row = (sum(walls) / len(walls), sum(cpus) / len(cpus), value)
    for name, (w, c, _) in rows.items():
        print(f"  {name:<54} {batch / w:7.2f} pairs/s  {w:7.2f} s/step  [{c:7.2f} CPU s]")
    print(f"  after / before: x{w0 / w1:.2f} wall, x{c0 / c1:.2f} CPU time   (first-step loss {l0:.5f} vs {l1:.5f})")
    if ref_row is not None:
        wr, cr, _ = ref_row
        print(f"  {'paper reference step (model + losses + LARS)':<54} {batch / wr:7.2f} pairs/s  {wr:7.2f} s/step"
              f"  [{cr:7.2f} CPU s]")
        print(f"  ours / reference: after x{wr / w1:.2f} wall (x{cr / c1:.2f} CPU time), "
              f"before x{wr / w0:.2f} wall (x{cr / c0:.2f} CPU time)")
    torch.set_num_threads(before_threads)
    return w1


def seconds_per_batch(stream, dev: torch.device, reps: int) -> float:
    """Mean wall seconds per batch over ``reps`` batches of ``stream`` moved to ``dev`` (its
    epochs repeat as needed)."""
    from pretrain.train import batch_to_device

    n, epoch = 0, 0
    synchronize(dev)
    tic = time.perf_counter()
    while n < reps:
        stream.set_position(epoch, 0)
        for b in stream:
            batch_to_device(b, dev)
            n += 1
            if n == reps:
                break
        epoch += 1
    synchronize(dev)
    return (time.perf_counter() - tic) / n


def bench_loader(store, batch, res, step_time, reps=30):
    from pretrain.loader import FrameStream, LoaderConfig

    print(f"== loader (read + batch + unpack masks) vs the step's consumption, batch {batch}, res {res}")
    cpu = torch.device("cpu")
    worst = None
    for cache in ("none", "ram"):
        stream = FrameStream(store, LoaderConfig(batch_size=batch, cache=cache, shuffle_buffer=256))
        per_batch = seconds_per_batch(stream, cpu, reps)
        ratio = step_time / per_batch
        worst = ratio if worst is None else min(worst, ratio)
        print(f"  cache {cache:>4}: {batch / per_batch:9.1f} frames/s  {per_batch * 1e3:7.2f} ms/batch  "
              f"step {step_time * 1e3:8.1f} ms/batch  loader {ratio:6.1f}x faster")
    assert worst >= 5, f"loader only {worst:.1f}x faster than the step (need >= 5x)"


def device_name(dev) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type


def peak_gib(dev) -> float:
    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")


def bench_gpu(batch, res, steps, dev=None, compile_rows=True, naive=True):
    """On the accelerator (frames made in memory; the loader is measured by ``bench_gpu_loader``):
    this step in fp32, bf16 + channels_last (+ compile), and the main-branch step (full FPN
    maps) with the same settings as the 'before'. Returns the fastest step's seconds."""
    dev = dev or torch.device("cuda")
    print(f"== GPU {device_name(dev)}: batch {batch}, res {res}, resnet18")
    cfg = ObjectiveConfig(resolution=res)
    batches = []
    for seed in range(2):
        images, masks, _ = synthetic_frames(batch, 256, 16, seed)
        batches.append((torch.from_numpy(images).to(dev), torch.from_numpy(masks).to(dev)))
    settings = [("fp32", None, False, False, False), ("bf16+channels_last", torch.bfloat16, True, False, False),
                ("before: main-branch step, bf16+channels_last", torch.bfloat16, True, False, True)]
    if compile_rows:
        settings += [("bf16+channels_last+compile", torch.bfloat16, True, True, False),
                     ("before: main-branch step, bf16+cl+compile", torch.bfloat16, True, True, True)]
    rows = []
    for name, amp, cl, comp, before in settings:
        torch.manual_seed(0)
        online = build_online(ModelConfig()).to(dev)
        target = build_target(online).to(dev)
        if before:
            online, target = main_copy(online, target)
        if cl:
            online, target = online.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last)
        model = torch.compile(online) if comp else online
        if comp:  # compile warm-up outside the timing
            time_steps(model, target, batches, cfg, 2, dev, amp, cl)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t, loss = time_steps(model, target, batches, cfg, steps, dev, amp, cl)
        rows.append((name, batch / t, peak_gib(dev), loss))
    base = rows[0][1]
    for name, pairs, mem, loss in rows:
        print(f"  {name:<46} {pairs:9.1f} pairs/s  x{pairs / base:5.2f} vs fp32  peak {mem:5.2f} GiB  loss {loss:.4f}")
    by = {name: pairs for name, pairs, _, _ in rows}
    print(f"  after / before (bf16+channels_last): x{by['bf16+channels_last'] / by['before: main-branch step, bf16+channels_last']:.2f}")
    if compile_rows:
        print(f"  after / before (bf16+cl+compile):    x{by['bf16+channels_last+compile'] / by['before: main-branch step, bf16+cl+compile']:.2f}")
    if naive:
        print("  naive per-scale on GPU (fp32):", end=" ")
        torch.manual_seed(0)
        online = build_online(ModelConfig()).to(dev)
        target = build_target(online).to(dev)
        on, tg = naive_copy(online, target)
        t_naive, _ = time_steps(on, tg, batches, cfg, steps, dev)
        print(f"{batch / t_naive:.1f} pairs/s; lean fp32 is x{rows[0][1] / (batch / t_naive):.2f}")
    return batch / max(pairs for _, pairs, _, _ in rows)


def bench_gpu_loader(batch, step_time, frames, size=256, k=16, reps=20):
    """Frames/s the store delivers to the device (read, unpack, batch, copy) from disk and from
    RAM, at the step's batch, against the fastest step's consumption (the aim: >= 5x)."""
    from maskgen.store import open_store
    from pretrain.loader import FrameStream, LoaderConfig

    dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    print(f"== loader -> {device_name(dev)}: batch {batch}, {frames} synthetic frames of {size} px, K={k}")
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_store(tmp, n=frames, size=size, k=k, chunk=64)
        store = open_store(tmp)
        for cache in ("none", "ram"):
            stream = FrameStream(store, LoaderConfig(batch_size=batch, cache=cache, shuffle_buffer=4 * batch),
                                 device=dev)
            per_batch = seconds_per_batch(stream, dev, reps)
            print(f"  cache {cache:>4}: {batch / per_batch:9.1f} frames/s  {per_batch * 1e3:7.2f} ms/batch;"
                  f" fastest step {step_time * 1e3:7.2f} ms/batch: loader x{step_time / per_batch:.1f} faster")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, smaller settings")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--cpu-threads", type=int, default=2, help="threads of the batch 8 / 224 px CPU step (default 2)")
    parser.add_argument("--cpu-batch", type=int, default=8)
    parser.add_argument("--cpu-resolution", type=int, default=224)
    parser.add_argument("--reference", default=None,
                        help="a copy (checkout or bare git mirror) of github.com/zhcz328/ANAUS; default $ANAUS_REFERENCE")
    parser.add_argument("--skip-cpu-step", action="store_true", help="skip the batch 8 / 224 px CPU comparison")
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--gpu-resolution", type=int, default=224)
    parser.add_argument("--gpu-steps", type=int, default=None, help="timed steps per setting (default 10, 5 with --quick)")
    parser.add_argument("--gpu-device", default=None,
                        help="run the GPU section on this device (e.g. cpu, to try it with tiny settings)")
    parser.add_argument("--no-compile", action="store_true", help="GPU section without the torch.compile rows")
    parser.add_argument("--gpu-loader-frames", type=int, default=0,
                        help="also time the loader into the device at --gpu-batch from a store of N frames (0: no)")
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU parts (no store needed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps = 2 if args.quick else 3
    settings = [(8, 64), (16, 96)] if args.quick else [(8, 64), (16, 96), (16, 128)]
    if not args.gpu_only:
        from paper_reference import reference_root

        from maskgen.store import open_store

        if not args.skip_cpu_step:
            bench_cpu_step(args.cpu_batch, args.cpu_resolution, args.cpu_threads, 1 if args.quick else 2,
                           reference_root(args.reference), 1)
        with tempfile.TemporaryDirectory() as tmp:
            make_synthetic_store(tmp, n=160, size=128, k=16, chunk=32)
            store = open_store(tmp)
            step_s = bench_lean_vs_naive(store, settings, steps)
            bench_loader(store, 16, 96, step_s[(16, 96)])
    gpu = torch.device(args.gpu_device) if args.gpu_device else (
        torch.device("cuda") if torch.cuda.is_available() else None)
    if gpu is not None:
        steps = args.gpu_steps or (5 if args.quick else 10)
        step_s = bench_gpu(args.gpu_batch, args.gpu_resolution, steps, gpu, compile_rows=not args.no_compile)
        if args.gpu_loader_frames:
            bench_gpu_loader(args.gpu_batch, step_s, args.gpu_loader_frames)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"== peak resident memory of this process: {peak:.0f} MiB")
    print(f"   segment_anything imported: {'segment_anything' in sys.modules}")


if __name__ == "__main__":
    main()
