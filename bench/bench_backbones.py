"""Backbone speed on this machine: forward+backward images per second, parameters and FLOPs per image.

    python bench/bench_backbones.py                 # every unet preset at its native size
    python bench/bench_backbones.py --tiny-candidates --threads 2 --batch 64
                                                    # the designs considered for the `tiny` preset

Prints figures; asserts nothing (speed targets live here, not in unit tests). One training step costs
about 3x the forward FLOPs (forward + backward through activations and weights).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from workbench.backbones import count_parameters, flops_per_image
from workbench_plugins.backbones import PRESETS, UNet, UNetConfig

TINY = PRESETS["tiny"].config
# Designs weighed for `tiny` (1x32x32 Fashion-MNIST on a 2-core CPU); the preset is one of these.
TINY_CANDIDATES: dict[str, UNetConfig] = {
    "b32 m122 rb1 attn8 (tiny)": TINY,
    "b32 m122 rb1 no-attn": replace(TINY, attention_levels=(), mid_attention=False),
    "b32 m122 rb2 attn8": replace(TINY, num_res_blocks=2),
    "b48 m122 rb1 attn8": replace(TINY, base_channels=48),
    "b48 m122 rb2 attn8": replace(TINY, base_channels=48, num_res_blocks=2),
    "b32 m1222 rb1 attn8": replace(TINY, channel_mult=(1, 2, 2, 2)),
    "b64 m122 rb1 attn8": replace(TINY, base_channels=64),
    "b32 m124 rb1 attn8": replace(TINY, channel_mult=(1, 2, 4)),
}


def train_images_per_second(model: torch.nn.Module, in_channels: int, image_size: int, batch: int,
                            *, steps: int, channels_last: bool = False) -> tuple[float, float]:
    """Forward + backward (no optimizer) throughput with an MSE loss, after two warm-up steps.

    Returns (images per wall-clock second, images per CPU-second of this process): on a CPU shared with
    other jobs the second is the steadier figure; times the thread count it estimates an idle machine."""
    x = torch.randn(batch, in_channels, image_size, image_size)
    t = torch.randint(0, 1000, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    for i in range(steps + 2):
        if i == 2:
            start, cpu_start = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.mse_loss(model(x, t), x)
        loss.backward()
        model.zero_grad(set_to_none=True)
    images = batch * steps
    return images / (time.perf_counter() - start), images / (time.process_time() - cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-candidates", action="store_true", help="measure the designs considered for tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.tiny_candidates:
        rows = [(name, cfg, 1, 32) for name, cfg in TINY_CANDIDATES.items()]
    else:
        rows = [(name, p.config, p.in_channels, p.image_size) for name, p in PRESETS.items()]
    print(f"threads={args.threads} batch={args.batch} channels_last={args.channels_last} "
          f"(fwd+bwd, no optimizer step)")
    print(f"{'design':28s} {'input':>9s} {'params':>12s} {'GFLOP/img':>10s} {'img/s':>8s} {'img/cpu-s':>10s}")
    for name, cfg, channels, size in rows:
        model = UNet(channels, channels, cfg)
        flops = flops_per_image(model, channels, size)
        ips, ips_cpu = train_images_per_second(model, channels, size, args.batch, steps=args.steps,
                                      channels_last=args.channels_last)
        print(f"{name:28s} {f'{channels}x{size}x{size}':>9s} {count_parameters(model):12,d} "
              f"{flops / 1e9:10.3f} {ips:8.1f} {ips_cpu:10.1f}", flush=True)


if __name__ == "__main__":
    main()
