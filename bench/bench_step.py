"""Where the default run's training step spends its time: data, forward, backward, optimizer (clipping +
AdamW), EMA, per step of the real engine's objects (built by `build_training_run` from the default config
plus --set overrides), timed phase by phase; then the same step under variants that alternate step by step
in one process (fp32 / bf16, channels_last, 28 px native vs padded to 32), so drift of a shared machine hits
every variant alike; optionally torch.compile's first-step time (run twice to see inductor's FX graph cache).

    python bench/bench_step.py                          # this CPU's default path
    python bench/bench_step.py --set dataset.pad_to=32  # the step at 32 px
    python bench/bench_step.py --compile                # + torch.compile (first step = compile time)

To see an AVX2-only CPU's fp32 path (an AMD EPYC without AVX-512/AMX) on a newer Xeon, run it with
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/bench_step.py
(which caps oneDNN, ATen's vectorised kernels and MKL at AVX2; the default run's fp32 speed so measured on a
Sapphire Rapids Xeon, 42.6 img/s at 32 px, matched the 41-45 img/s of a 2-core EPYC).
Not a test: it prints numbers, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PHASES = ("data", "forward", "backward", "optimizer", "ema")


def build(overrides: list[str], device: str):
    from workbench.config import load_config
    from workbench.engine.distributed import Distributed
    from workbench.engine.setup import build_training_run
    from workbench.sampling.generate import resolve_device

    cfg = load_config(None, [f"run.device={device}", "train.minutes=0", *overrides], search_cwd=False)
    dev = resolve_device(device)
    return build_training_run(cfg, Distributed(), dev)


def timed_step(run, times: dict[str, list[float]] | None = None) -> float:
    """One training step of `run` (as the engine's, without the metric window), each phase timed."""
    import torch

    from workbench.diffusion import randn
    from workbench.engine.optim import clip_gradients

    marks = [time.perf_counter()]
    x, _ = run.data.next_batch(run.micro_batch)
    t = run.diffusion.sample_timesteps(x.shape[0], run.device, run.noise_generator)
    noise = randn(tuple(x.shape), run.noise_generator, run.device)
    if run.precision.channels_last:
        x, noise = x.contiguous(memory_format=torch.channels_last), noise.contiguous(memory_format=torch.channels_last)
    marks.append(time.perf_counter())
    with run.precision.autocast(run.device):
        losses, _ = run.diffusion.training_losses(run.forward, x, t=t, noise=noise,
                                                  weighting=run.cfg.train.loss_weighting,
                                                  min_snr_gamma=run.cfg.train.min_snr_gamma)
        loss = losses.mean()
    marks.append(time.perf_counter())
    loss.backward()
    marks.append(time.perf_counter())
    clip_gradients(run.trainable, run.cfg.train.grad_clip)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    if run.ema is not None:
        run.ema.update(run.step)
    run.step += 1
    marks.append(time.perf_counter())
    if times is not None:
        for phase, a, b in zip(PHASES, marks, marks[1:]):
            times[phase].append(b - a)
    return marks[-1] - marks[0]


def breakdown(args) -> None:
    run = build(args.set, args.device)
    print(f"default run's step ({run.precision.name}, channels_last {run.precision.channels_last}, batch "
          f"{run.micro_batch}, {run.channels}x{run.image_size}x{run.image_size}, "
          f"{run.flops_per_image / 1e9:.3f} GFLOP/img forward)", flush=True)
    started = time.perf_counter()
    timed_step(run)
    print(f"  first step (kernel set-up{', compilation' if args.compile else ''}): "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    for _ in range(2):
        timed_step(run)
    times = {phase: [] for phase in PHASES}
    totals = [timed_step(run, times) for _ in range(args.steps)]
    total = statistics.median(totals)
    for phase in PHASES:
        med = statistics.median(times[phase])
        print(f"  {phase:10s} {med * 1000:8.1f} ms  {med / total:6.1%}")
    print(f"  {'step':10s} {total * 1000:8.1f} ms  = {run.micro_batch / total:.1f} img/s "
          f"({3 * run.flops_per_image * run.micro_batch / total / 1e9:.0f} GFLOP/s counting backward as 2x forward)",
          flush=True)
    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            for _ in range(3):
                timed_step(run)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def variants(args) -> None:
    """The step under each variant, alternating in flipped order (medians over --rounds each)."""
    from workbench.engine.setup import cpu_has_amx

    named = {"as configured": [], "fp32": ["train.precision=fp32"],
             "fp32 channels_last": ["train.precision=fp32", "train.channels_last=true"],
             "fp32 padded to 32 px": ["train.precision=fp32", "dataset.pad_to=32"]}
    if cpu_has_amx() or args.bf16:
        named["bf16"] = ["train.precision=bf16"]
        named["bf16 channels_last"] = ["train.precision=bf16", "train.channels_last=true"]
    runs = {name: build(args.set + extra, args.device) for name, extra in named.items()}
    for run in runs.values():
        for _ in range(2):
            timed_step(run)
    times = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            times[name].append(timed_step(runs[name]))
    base = statistics.median(times[names[0]])
    print(f"variants, alternating ({args.rounds} steps each, medians):")
    for name in names:
        med = statistics.median(times[name])
        run = runs[name]
        print(f"  {name:22s} {med * 1000:8.1f} ms/step  {run.micro_batch / med:7.1f} img/s  "
              f"{base / med:5.2f}x the configured step  ({run.precision.name}, {run.image_size} px)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (repeatable), e.g. --set dataset.pad_to=32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of the breakdown")
    parser.add_argument("--rounds", type=int, default=8, help="alternating steps per variant")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone (first step compiles)")
    parser.add_argument("--profile", action="store_true", help="also print the torch profiler's top operators")
    parser.add_argument("--bf16", action="store_true", help="bf16 variants even without AMX (emulated, slow)")
    parser.add_argument("--no-variants", action="store_true")
    args = parser.parse_args()

    import torch

    from bench_train import cpu_name

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile:
        args.set.append("train.compile=true")
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    breakdown(args)
    if not args.no_variants:
        variants(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DDPM_WORKBENCH_NO_PLUGINS", "1")
    raise SystemExit(main())
