"""Sampler speed: images per second for DDPM-1000, DDIM-50 and DPM-Solver++-20 through the real sampling
path of `ddpm-workbench sample` (workbench.sampling.generate.generate: batch on the device, per-image x_T,
no host sync inside the step loop; bf16 autocast + channels_last on CUDA).

    python bench/bench_sample.py                          # tiny preset, batch 16, on cuda if present else cpu
    python bench/bench_sample.py --device cpu --threads 2
    python bench/bench_sample.py --preset ddpm-cifar10 --batch-size 256 --device cuda

    python bench/bench_sample.py --device cpu --threads 1 --image-size 28 --batch-size 250 --vs-diffusers
                                                          # ours vs diffusers' DDIM/DDPM pipelines, alternating

Untrained weights (speed does not depend on them). Prints figures; asserts nothing. On a CPU shared with
other jobs, images per CPU-second of this process is the steadier figure. On a CPU the first line names it
(lscpu's model name and its avx2/avx512f/amx flags) and the instruction-set path: set ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 to see an AVX2-only CPU's path on a newer one.

--vs-diffusers runs ours (the real `sample` path: a SamplingBundle, chunks of `cpu_chunk_images`,
channels_last in float32) and diffusers' DDIMPipeline / DDPMPipeline with a UNet2DModel of the same
architecture (bench_train.DIFFUSERS_TWINS; tiny only) at the same batch, steps and threads, in float32 and
with our default precision, taking turns `--rounds` times in one process (machine speed drifts); figures
are the best round of each. `--unchunked` adds ours without the CPU chunks and channels_last (the path
before they existed).
"""

from __future__ import annotations

import argparse
import time

import torch

from workbench.config import load_config
from workbench.diffusion import GaussianDiffusion, build_sampler
from workbench.sampling.generate import SampleSettings, generate, resolve_device
from workbench.sampling.model import SamplingBundle
from workbench.backbones import build_backbone, count_parameters, flops_per_image

RUNS = (("ddpm", 1000), ("ddim", 50), ("dpm-solver++", 20))


def bundle_for(preset: str, device: torch.device, channels: int, image_size: int):
    cfg = load_config(None, [f"backbone.preset={preset}"], search_cwd=False)
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, in_channels=channels, out_channels=channels, image_size=image_size)
    flops = flops_per_image(model, channels, image_size)
    model = model.to(device).eval()
    diffusion = GaussianDiffusion.from_config(cfg).to(device)
    # a SamplingBundle, as load_for_sampling gives `sample`: generate may move its model to channels_last
    return cfg, SamplingBundle(model=model, diffusion=diffusion, cfg=cfg, step=0, channels=channels,
                               image_size=image_size, checkpoint_path=None), flops


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


def diffusers_pipeline(kind: str, image_size: int, channels: int, device: torch.device):
    """diffusers' DDIMPipeline or DDPMPipeline around a UNet2DModel twin of the tiny preset, linear betas."""
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

    from bench_train import DIFFUSERS_TWINS

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=image_size, in_channels=channels, out_channels=channels, flip_sin_to_cos=False,
                       freq_shift=1, downsample_padding=0, **DIFFUSERS_TWINS["tiny"]).to(device).eval()
    scheduler = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    if kind == "ddim":
        pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler(**scheduler))
    else:
        pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(**scheduler))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def versus_diffusers(args, device: torch.device) -> None:
    """Ours vs diffusers' pipelines, alternating rounds in this process; images per wall and CPU second."""
    import workbench.sampling.generate as generate_module
    from workbench.sampling.model import model_function

    if args.preset != "tiny":
        raise SystemExit("--vs-diffusers: only the tiny preset has a diffusers twin here")
    cfg, bundle, flops = bundle_for(args.preset, device, args.channels, args.image_size)
    n = args.batch_size * args.batches

    def unchunked(*a, **kw):
        return model_function(*a, **{**kw, "chunk": False, "channels_last": False})

    def ours(sampler_name: str, steps: int, precision: str, legacy: bool = False):
        def run():
            generate_module.model_function = unchunked if legacy else model_function
            bundle.model.to(memory_format=torch.contiguous_format)
            try:
                generate(bundle, sampler_for(cfg, sampler_name, steps),
                         SampleSettings(n=n, steps=steps, batch_size=args.batch_size, precision=precision), device=device)
            finally:
                generate_module.model_function = model_function
        return run

    def theirs(kind: str, steps: int):
        pipe = diffusers_pipeline(kind, args.image_size, args.channels, device)

        def run():
            with torch.inference_mode():
                for _ in range(args.batches):
                    pipe(batch_size=args.batch_size, num_inference_steps=steps, output_type="np",
                         generator=torch.Generator().manual_seed(0))
        return run

    runs = {}
    for kind, steps in ((name, steps) for name in ("ddim", "ddpm") for steps in args.vs_steps):
        runs[f"ours {kind}-{steps} fp32"] = ours(kind, steps, "fp32")
        runs[f"ours {kind}-{steps} auto"] = ours(kind, steps, "auto")
        if args.unchunked:
            runs[f"ours {kind}-{steps} fp32 unchunked"] = ours(kind, steps, "fp32", legacy=True)
            runs[f"ours {kind}-{steps} auto unchunked"] = ours(kind, steps, "auto", legacy=True)
        runs[f"diffusers {kind}-{steps} fp32"] = theirs(kind, steps)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for label, run in runs.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            run()
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            old = best.get(label)
            best[label] = (min(wall, old[0]) if old else wall, min(cpu, old[1]) if old else cpu)
    print(f"{n} images per measurement, batch {args.batch_size}, {args.channels}x{args.image_size}x{args.image_size}, "
          f"tiny U-Net ({count_parameters(bundle.model):,} params), {torch.get_num_threads()} threads, best of "
          f"{args.rounds} alternating rounds (the first warms up); auto = {generate_module.sampling_dtype('auto', device) or 'fp32'}")
    for label, (wall, cpu) in best.items():
        steps = int(label.split()[1].split("-")[1])
        print(f"{label:>34}: {n / cpu:7.2f} images per CPU-second ({cpu * 1e3 / n / steps:6.2f} ms CPU per "
              f"image-step), {n / wall:7.2f} images/s wall")
    if device.type == "cpu":
        print("per 1,000 images: " + ", ".join(f"{label} {1000 / n * cpu / 60:.1f} CPU-min"
                                               for label, (_, cpu) in best.items()))


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
    parser.add_argument("--vs-diffusers", action="store_true",
                        help="ours vs diffusers' DDIMPipeline/DDPMPipeline (tiny preset), alternating rounds")
    parser.add_argument("--vs-steps", default="50", help="with --vs-diffusers: comma-separated step counts (default: 50)")
    parser.add_argument("--rounds", type=int, default=2, help="with --vs-diffusers: alternating rounds (default: 2)")
    parser.add_argument("--unchunked", action="store_true",
                        help="with --vs-diffusers: also ours without CPU chunks and channels_last (the earlier path)")
    args = parser.parse_args()
    args.vs_steps = [int(s) for s in args.vs_steps.split(",") if s.strip()]
    if args.shared_noise:
        import workbench.sampling.generate as generate_module

        generate_module.step_noise_generators = (
            lambda seed, start, count, device: torch.Generator(device=device).manual_seed(seed + start))

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cpu":
        from bench_train import cpu_name

        print(f"CPU: {cpu_name()}")
    if args.vs_diffusers:
        versus_diffusers(args, device)
        return
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
