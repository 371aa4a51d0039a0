"""Sample quality of a run per sampler, through `ddpm-workbench eval`, and the speed of evaluation itself.

    python bench/bench_quality.py --run latest --sampler ddpm:100 ddim:50 dpm-solver++:20 --n 2000
    python bench/bench_quality.py --speed      # feature extraction on this machine, and the GPU estimate

Quality: each sampler is scored by `ddpm-workbench eval --json` (what a user runs) against the reference
split (default: test), with the extractor eval chooses (the shipped fashion-classifier for 28/32 px
grayscale, Inception otherwise). Also printed: the distance of as many *real* training images (the floor at
this n: the estimator's bias). Lower distance is better; compare only at the same n, extractor and split.

Speed: the classifier's features of 1,000 images on this CPU (target: under 10 s), Inception's FLOPs per
image, the FLOPs of a ddpm-cifar10 preset forward pass, and from them an estimate of one evaluation of 10,000
samples with DPM-Solver++ at 20 steps on a GPU at an assumed sustained share of its peak. Not a test: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def evaluate(args: list[str]) -> dict:
    """`ddpm-workbench eval ... --json` in a subprocess, as a user runs it."""
    command = [sys.executable, "-m", "workbench", "eval", *args, "--json", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip() or f"eval failed with exit code {done.returncode}")
    return json.loads(done.stdout)


def line(label: str, result: dict, seconds: float | None = None) -> str:
    kid = f"{result['kernel_label']} {result['kid']:.5f} +- {result['kid_std']:.5f}" if result.get("kid") is not None else ""
    pr = (f"P {result['precision']:.3f} R {result['recall']:.3f}" if result.get("precision") is not None else "")
    took = f"  ({seconds:.0f} s)" if seconds is not None else ""
    return (f"{label:26s} n={result['n']:<6d} {result['frechet_label']} {result['frechet']:9.4f}  {kid}  {pr}{took}")


def real_images_npz(n: int, path: Path, seed: int) -> None:
    """n random Fashion-MNIST training images (padded to 32 px), as `sample --format npz` writes them."""
    import numpy as np
    import torch

    from workbench.data import pad_images
    from workbench_plugins.datasets import fashion_mnist

    images = fashion_mnist(split="train").images
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    np.savez(path, arr_0=pad_images(images[pick], 32).permute(0, 2, 3, 1).numpy())


def quality(args) -> None:
    reference = ["--split", args.split]
    with tempfile.TemporaryDirectory() as tmp:
        real = Path(tmp) / "real.npz"
        real_images_npz(args.n, real, args.seed)
        print(line("real training images", evaluate(["--samples", str(real), *reference])) + "  (the floor at this n)",
              flush=True)
    for spec in args.sampler:
        name, _, steps = spec.partition(":")
        options = ["--run", args.run, "--n", str(args.n), "--seed", str(args.seed), *reference]
        options += (["--sampler", name] if name else []) + (["--steps", steps] if steps else [])
        started = time.perf_counter()
        result = evaluate(options)
        print(line(spec or "the run's sampler", result, time.perf_counter() - started), flush=True)


def speed() -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from workbench.evaluation.extractors import build_extractor, extract_features

    classifier = build_extractor("fashion-classifier")
    images = torch.randint(0, 256, (1000, 1, 32, 32), dtype=torch.uint8)
    extract_features(classifier, images[:100])  # warm-up
    started = time.perf_counter()
    extract_features(classifier, images)
    print(f"fashion-classifier: 1,000 images in {time.perf_counter() - started:.2f} s on this CPU "
          f"({torch.get_num_threads()} threads; target < 10 s)")

    import torchvision

    inception = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        inception(torch.zeros(1, 3, 299, 299))
    inception_flops = counter.get_total_flops()

    from workbench.config import load_config
    from workbench.backbones import build_backbone, flops_per_image

    cfg = load_config(None, ["backbone.name=unet", "backbone.preset=ddpm-cifar10"], search_cwd=False)
    unet = build_backbone(cfg.backbone, in_channels=3, out_channels=3, image_size=32)
    unet_flops = flops_per_image(unet, 3, 32)
    n, steps, share = 10_000, 20, 0.3
    total = n * steps * unet_flops + n * inception_flops
    print(f"inception: {inception_flops / 1e9:.1f} GFLOP per image (299x299); ddpm-cifar10 U-Net: "
          f"{unet_flops / 1e9:.1f} GFLOP per forward")
    print(f"eval of {n:,} samples, dpm-solver++ {steps} steps (one network call each): {total / 1e15:.2f} PFLOP")
    for gpu, peak in (("H100/H200", 989e12), ("A100", 312e12)):
        print(f"  {gpu}: about {total / (peak * share):.0f} s at {share:.0%} of the bf16 peak")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="latest", help="run name, path or 'latest' (under ./runs)")
    parser.add_argument("--sampler", nargs="*", default=[""], metavar="NAME[:STEPS]",
                        help="samplers to score (default: the run's own)")
    parser.add_argument("--n", type=int, default=1000, help="samples per sampler (default 1000)")
    parser.add_argument("--split", default="test", help="reference split (default test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", action="store_true", help="measure evaluation speed instead")
    args = parser.parse_args()
    if args.speed:
        speed()
    else:
        quality(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
