"""Training throughput of the real engine: img/s for the `tiny` and `ddpm-cifar10` U-Net presets, and for
HF diffusers' UNet2DModel configured as ddpm-cifar10 (google/ddpm-cifar10-32), all through the same
training step (timesteps + noise, forward, MSE, backward, clipping, fused AdamW, EMA). On a GPU it also
prints MFU from the FLOPs counted on each model (3x the forward) against the GPU's peak bf16 FLOP/s.

    python bench/bench_train.py                      # CPU: batch 16, tiny + ddpm-cifar10 + diffusers
    python bench/bench_train.py --batch 128          # GPU (bf16 autocast, channels_last, fused AdamW)
    python bench/bench_train.py --compile            # with torch.compile

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


def diffusers_ddpm_cifar10(in_channels: int, out_channels: int, image_size: int):
    """UNet2DModel with google/ddpm-cifar10-32's architecture (35.7M parameters), wrapped as a backbone."""
    import torch
    from diffusers import UNet2DModel

    class DiffusersUNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = UNet2DModel(
                sample_size=image_size, in_channels=in_channels, out_channels=out_channels,
                block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                norm_num_groups=32, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
                attention_head_dim=None, dropout=0.1)

        def forward(self, x, t, y=None):
            return self.net(x, t).sample

    return DiffusersUNet()


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
           "mfu": statistics.mean(m.mfu for m in steady), "wall": wall}
    print(f"{label:34s} {row['params'] / 1e6:7.2f}M {row['gflops']:7.3f} GFLOP/img "
          f"{row['img_per_s']:9.1f} img/s" + (f"  MFU {row['mfu']:.1%}" if row["mfu"] >= 0 else ""), flush=True)
    return row


def interleaved(contestants: dict, args) -> dict[str, list[float]]:
    """Seconds per training forward + backward (the engine's loss, precision and memory format) of each
    model, alternating step by step in flipped order, so that drift in the machine's speed (10-20% over
    minutes on a shared CPU, more than the differences being measured) hits every contestant alike."""
    import torch

    from workbench.config import load_config
    from workbench.diffusion import GaussianDiffusion
    from workbench.engine.setup import resolve_precision
    from workbench.sampling.generate import resolve_device

    cfg = load_config(None, [f"run.device={args.device}"], search_cwd=False)
    device = resolve_device(args.device)
    precision = resolve_precision(cfg.train, device)
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    generator = torch.Generator(device).manual_seed(0)
    x0 = torch.rand(args.batch, 3, 32, 32, generator=generator, device=device) * 2 - 1
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
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    args.batch = args.batch or (128 if gpu else 16)
    args.steps = args.steps or (50 if gpu else 4)
    args.rounds = args.rounds or (200 if gpu else 30)
    where = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"training throughput on {where}; global batch {args.batch}, torch {torch.__version__}", flush=True)

    rows = {}
    if not args.skip_tiny:
        rows["tiny"] = measure("unet tiny (32 px, 1 ch)", ["backbone.preset=tiny", "dataset.channels=1"], args)
    cifar = ["backbone.preset=ddpm-cifar10", "dataset.channels=3"]
    rows["ours"] = measure("unet ddpm-cifar10 (32 px, 3 ch)", cifar, args)
    try:
        import diffusers  # noqa: F401
    except ImportError:
        print("diffusers UNet2DModel: skipped (pip install diffusers to compare)")
        return 0
    rows["diffusers"] = measure("diffusers UNet2DModel (same arch)", cifar, args,
                                backbone_factory=diffusers_ddpm_cifar10)
    # The engine rows above ran one after the other; the ratio comes from the models alternating step by step.
    from workbench_plugins.backbones import build_unet

    times = interleaved({"ours": build_unet(3, 3, 32, preset="ddpm-cifar10"),
                         "diffusers": diffusers_ddpm_cifar10(3, 3, 32)}, args)
    ratios = sorted(d / o for o, d in zip(times["ours"], times["diffusers"]))
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"forward+backward, alternating ({args.rounds} rounds): ours "
          f"{args.batch / statistics.median(times['ours']):.2f} img/s, diffusers "
          f"{args.batch / statistics.median(times['diffusers']):.2f} img/s")
    print(f"ddpm-cifar10 vs diffusers: {statistics.median(ratios):.3f}x (median of per-round ratios; "
          f"quartiles {quartiles[0]:.3f}x-{quartiles[2]:.3f}x; target >= 1.0x)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DDPM_WORKBENCH_NO_PLUGINS", "1")
    raise SystemExit(main())
