"""Training throughput of the real engine: img/s for the `tiny` and `ddpm-cifar10` U-Net presets, and for
HF diffusers' UNet2DModel configured as ddpm-cifar10 (google/ddpm-cifar10-32), all through the same
training step (timesteps + noise, forward, MSE, backward, clipping, fused AdamW, EMA). On a GPU it also
prints MFU from the FLOPs counted on each model (3x the forward) against the GPU's peak bf16 FLOP/s, and
the peak GPU memory. Then, per network (tiny and ddpm-cifar10) and precision (fp32, and bf16 on GPUs and on
CPUs with AMX), ours against UNet2DModel of the same architecture from steps alternating in one process.
The first line names the CPU (model and SIMD features) or the GPU.

    python bench/bench_train.py                      # CPU: batch 16, tiny + ddpm-cifar10 + diffusers
    python bench/bench_train.py --batch 128          # GPU (bf16 autocast, channels_last, fused AdamW)
    python bench/bench_train.py --compile            # with torch.compile (compile time is printed)

diffusers is optional (`pip install diffusers`); without it that row is skipped with a message.
Not a test: it prints numbers, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# UNet2DModel configurations with the same architecture as our presets (params are printed side by side).
DIFFUSERS_TWINS = {
    "ddpm-cifar10": dict(  # google/ddpm-cifar10-32, 35.7M parameters
        block_out_channels=(128, 256, 256, 256), layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32, attention_head_dim=None, dropout=0.1),
    "tiny": dict(  # 32-64-64, one block per level, 4 heads at 1/4 size and in the middle, scale-shift
        block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, attention_head_dim=16, resnet_time_scale_shift="scale_shift"),
}


def diffusers_twin(preset: str):
    """A factory of UNet2DModel with `preset`'s architecture, wrapped as a backbone."""
    def build(in_channels: int, out_channels: int, image_size: int):
        import torch
        from diffusers import UNet2DModel

        class DiffusersUNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = UNet2DModel(sample_size=image_size, in_channels=in_channels, out_channels=out_channels,
                                       flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
                                       **DIFFUSERS_TWINS[preset])

            def forward(self, x, t, y=None):
                return self.net(x, t).sample

        return DiffusersUNet()
    return build


def measure(label: str, overrides: list[str], args, backbone_factory=None) -> dict | None:
    """Train `args.windows` log windows of `args.steps` steps; img/s and MFU from all but the first."""
    import workbench.backbones as backbones
    from workbench.config import load_config
    from workbench.engine import train

    cfg = load_config(None, [
        "dataset.name=synthetic", "dataset.size=32", "dataset.pad_to=0", f"dataset.count={max(256, args.batch)}",
        f"train.batch_size={args.batch}", f"train.steps={args.steps * args.windows}",
        f"train.log_every={args.steps}", "train.sample_every=0", "train.checkpoint_every=0",
        "train.warmup_steps=10", "sample.steps=1", "sample.n=1", f"run.device={args.device}",
        f"train.compile={'true' if args.compile else 'false'}", *overrides], search_cwd=False)
    events = []
    real_build = backbones.build_backbone
    if backbone_factory is not None:
        backbones.build_backbone = lambda section, **kw: backbone_factory(**kw)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            train(cfg, run_dir=Path(tmp) / "run", on_event=events.append)
            wall = time.perf_counter() - started
    finally:
        backbones.build_backbone = real_build
    metrics = [e for e in events if e.kind == "metrics"]
    steady = metrics[1:] or metrics
    start = next(e for e in events if e.kind == "started")
    row = {"label": label, "params": start.parameters, "gflops": start.flops_per_image / 1e9,
           "img_per_s": statistics.mean(m.img_per_s for m in steady),
           "mfu": statistics.mean(m.mfu for m in steady), "wall": wall,
           "peak_mem": max(m.gpu_mem_bytes for m in metrics),
           # the first window holds the warm-up (and torch.compile's compilation): its extra time over a
           # steady window
           "first_window_extra_s": metrics[0].elapsed_s - args.steps / statistics.mean(m.it_per_s for m in steady)}
    line = (f"{label:34s} {row['params'] / 1e6:7.2f}M {row['gflops']:7.3f} GFLOP/img "
            f"{row['img_per_s']:9.1f} img/s")
    if row["mfu"] >= 0:
        line += f"  MFU {row['mfu']:.1%}"
    if row["peak_mem"] > 0:
        line += f"  peak {row['peak_mem'] / 2**30:.2f} GiB"
    if args.compile:
        line += f"  compile+warm-up {row['first_window_extra_s']:.0f} s"
    print(line, flush=True)
    return row


def interleaved(contestants: dict, args, channels: int, precision_name: str) -> dict[str, list[float]]:
    """Seconds per training forward + backward (the engine's loss, precision and memory format) of each
    model, alternating step by step in flipped order, so that drift in the machine's speed (10-20% over
    minutes on a shared CPU, more than the differences being measured) hits every contestant alike."""
    import torch

    from workbench.config import load_config
    from workbench.diffusion import GaussianDiffusion
    from workbench.engine.setup import resolve_precision
    from workbench.sampling.generate import resolve_device

    cfg = load_config(None, [f"run.device={args.device}", f"train.precision={precision_name}"], search_cwd=False)
    device = resolve_device(args.device)
    precision = resolve_precision(cfg.train, device)
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    generator = torch.Generator(device).manual_seed(0)
    x0 = torch.rand(args.batch, channels, 32, 32, generator=generator, device=device) * 2 - 1
    if precision.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    for model in contestants.values():
        model.to(device).train()
        if precision.channels_last:
            model.to(memory_format=torch.channels_last)

    def step(model) -> float:
        started = time.perf_counter()
        with precision.autocast(device):
            losses, _ = diffusion.training_losses(model, x0, generator=generator)
        losses.mean().backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    for model in contestants.values():  # warm-up: oneDNN / cuDNN pick their kernels on the first calls
        step(model), step(model)
    times = {name: [] for name in contestants}
    names = list(contestants)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            times[name].append(step(contestants[name]))
    return times


# Environment variables that cap the instruction sets torch's CPU kernels use (oneDNN, ATen, MKL): set to AVX2
# on a newer Xeon they show an AVX2-only CPU's path.
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def cpu_name() -> str:
    """The CPU's model name and the SIMD features that decide our kernels (lscpu's words), for every figure,
    and the instruction-set path when ISA_VARIABLES cap it."""
    forced = [f"{name}={os.environ[name]}" for name in ISA_VARIABLES if os.environ.get(name)]
    path = f", path limited by {' '.join(forced)}" if forced else ""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        import platform

        return (platform.processor() or "unknown CPU") + path
    flags = set(info.get("flags", "").split())
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{info.get('model name', 'unknown CPU')} ({', '.join(simd) or 'no AVX2'}){path}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=0, help="global batch (default 16 on CPU, 128 on GPU)")
    parser.add_argument("--steps", type=int, default=0, help="steps per measured window (default 4 CPU, 50 GPU)")
    parser.add_argument("--windows", type=int, default=3, help="windows; the first is warm-up and not counted")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternating forward+backward steps per model for the ratio (default 30 CPU, 200 GPU)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--no-diffusers", action="store_true", help="only our engine rows (the GPU kit's runs)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    args.batch = args.batch or (128 if gpu else 16)
    args.steps = args.steps or (50 if gpu else 4)
    args.rounds = args.rounds or (200 if gpu else 30)
    where = torch.cuda.get_device_name() if gpu else f"{cpu_name()}, {torch.get_num_threads()} threads"
    print(f"training throughput on {where}; global batch {args.batch}, torch {torch.__version__}", flush=True)

    rows = {}
    if not args.skip_tiny:
        rows["tiny"] = measure("unet tiny (32 px, 1 ch)", ["backbone.preset=tiny", "dataset.channels=1"], args)
    cifar = ["backbone.preset=ddpm-cifar10", "dataset.channels=3"]
    rows["ours"] = measure("unet ddpm-cifar10 (32 px, 3 ch)", cifar, args)
    if args.no_diffusers:
        return 0
    try:
        import diffusers  # noqa: F401
    except ImportError:
        print("diffusers UNet2DModel: skipped (pip install diffusers to compare)")
        return 0
    rows["diffusers"] = measure("diffusers UNet2DModel (same arch)", cifar, args,
                                backbone_factory=diffusers_twin("ddpm-cifar10"))
    print_ratios(args, gpu)
    return 0


def print_ratios(args, gpu: bool) -> None:
    """Ours vs diffusers' UNet2DModel of the same architecture, per network and precision, from forward +
    backward steps alternating in one process (the engine rows above ran one after the other)."""
    from workbench.engine.setup import cpu_has_amx
    from workbench_plugins.backbones import build_unet

    precisions = ["fp32", "bf16"] if gpu or cpu_has_amx() else ["fp32"]
    if not (gpu or cpu_has_amx()):
        print("bf16: skipped (this CPU has no AMX; bf16 runs emulated there, see docs/training.md)")
    networks = [("tiny", 1)] if not args.skip_tiny else []
    networks.append(("ddpm-cifar10", 3))
    for preset, channels in networks:
        for precision in precisions:
            ours, theirs = build_unet(channels, channels, 32, preset=preset), diffusers_twin(preset)(channels, channels, 32)
            times = interleaved({"ours": ours, "diffusers": theirs}, args, channels, precision)
            ratios = sorted(d / o for o, d in zip(times["ours"], times["diffusers"]))
            quartiles = statistics.quantiles(ratios, n=4)
            params = [sum(p.numel() for p in m.parameters()) / 1e6 for m in (ours, theirs)]
            print(f"{preset:12s} {precision}: ours {args.batch / statistics.median(times['ours']):8.2f} img/s "
                  f"({params[0]:.2f}M), diffusers {args.batch / statistics.median(times['diffusers']):8.2f} img/s "
                  f"({params[1]:.2f}M): {statistics.median(ratios):.3f}x (median of {args.rounds} alternating "
                  f"forward+backward steps; quartiles {quartiles[0]:.3f}x-{quartiles[2]:.3f}x; target >= 1.3x)",
                  flush=True)


if __name__ == "__main__":
    os.environ.setdefault("DDPM_WORKBENCH_NO_PLUGINS", "1")
    raise SystemExit(main())
