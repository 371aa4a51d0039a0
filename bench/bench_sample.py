"""Sampler speed: images per second for DDPM-1000, DDIM-50 and DPM-Solver++-20 through the real sampling
path of `ddpm-workbench sample` (workbench.sampling.generate.generate: batch on the device, per-image x_T,
no host sync inside the step loop; bf16 autocast + channels_last on CUDA).

    python bench/bench_sample.py                          # tiny preset, batch 16, on cuda if present else cpu
    python bench/bench_sample.py --device cpu --threads 2
    python bench/bench_sample.py --preset ddpm-cifar10 --batch-size 256 --device cuda

Untrained weights (speed does not depend on them). Prints figures; asserts nothing. On a CPU shared with
other jobs, images per CPU-second of this process is the steadier figure.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from workbench.config import load_config
from workbench.diffusion import GaussianDiffusion, build_sampler
from workbench.sampling.generate import SampleSettings, generate, resolve_device
from workbench.backbones import build_backbone, count_parameters, flops_per_image

RUNS = (("ddpm", 1000), ("ddim", 50), ("dpm-solver++", 20))


def bundle_for(preset: str, device: torch.device, channels: int, image_size: int):
    cfg = load_config(None, [f"backbone.preset={preset}"], search_cwd=False)
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=image_size)
    flops = flops_per_image(model, channels, image_size)
    model = model.to(device).eval()
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    return cfg, SimpleNamespace(model=model, diffusion=diffusion, cfg=cfg, channels=channels,
                                image_size=image_size), flops


def sampler_for(cfg, name: str, steps: int):
    from workbench.config import resolve

    raw = cfg.as_dict()
    raw["sample"] = {"name": name, "steps": steps}
    return build_sampler(resolve(raw).sample)


def time_run(bundle, sampler, settings: SampleSettings, device: torch.device) -> tuple[float, float]:
    """(images per wall second, images per CPU second) of one `generate` call (returns on the CPU: synced)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    generate(bundle, sampler, settings, device=device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return settings.n / wall, settings.n / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="unet preset (default: tiny)")
    parser.add_argument("--channels", type=int, default=1, help="image channels (default: 1, Fashion-MNIST)")
    parser.add_argument("--image-size", type=int, default=32, help="image side (default: 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=1, help="batches per measurement (default: 1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--only", default="", help="comma-separated samplers to run, e.g. ddim,dpm-solver++")
    parser.add_argument("--shared-noise", action="store_true",
                        help="one noise generator per batch instead of one stream per image (what per-image streams "
                             "cost: on a GPU each image's draw is its own kernel launch)")
    args = parser.parse_args()
    if args.shared_noise:
        import workbench.sampling.generate as generate_module

        generate_module.step_noise_generators = (
            lambda seed, start, count, device: torch.Generator(device=device).manual_seed(seed + start))

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg, bundle, flops = bundle_for(args.preset, device, args.channels, args.image_size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    precision = "bf16 autocast, channels_last" if device.type == "cuda" else "fp32"
    print(f"preset {args.preset}: {count_parameters(bundle.model):,} params, {flops / 1e9:.3f} GFLOP/image forward, "
          f"{args.channels}x{args.image_size}x{args.image_size}, batch {args.batch_size}, {name}, {precision}, "
          f"torch {torch.__version__}, per-step noise {'one generator per batch' if args.shared_noise else 'per image'}")
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    for sampler_name, steps in RUNS:
        if wanted and sampler_name not in wanted:
            continue
        sampler = sampler_for(cfg, sampler_name, steps)
        # warm-up: one short batch (kernels, allocator, autotuning) outside the measurement
        time_run(bundle, sampler_for(cfg, sampler_name, 2), SampleSettings(n=args.batch_size, steps=2), device)
        settings = SampleSettings(n=args.batch_size * args.batches, steps=steps, batch_size=args.batch_size)
        per_wall, per_cpu = time_run(bundle, sampler, settings, device)
        evals = per_wall * steps
        line = (f"{sampler_name:>13}-{steps:<4} {per_wall:9.2f} images/s  ({evals:9.1f} network evals/s, "
                f"{evals * flops / 1e12:6.2f} TFLOP/s")
        if device.type == "cpu":
            line += f"; {per_cpu:.2f} images per CPU-second"
        print(line + ")")


if __name__ == "__main__":
    main()
