"""Per-image random streams, so that image i of a seed is the same picture at any batch size.

Image i's starting noise x_T comes from its own CPU generator seeded with (seed, i) through numpy's
SeedSequence (a hash with no collisions between nearby pairs such as (0, 1000) and (1, 0)), drawn on the
CPU so the same seed gives the same starting noise on every device. Samplers that add fresh noise at each
step (DDPM; DDIM with eta > 0) draw image i's share of it from a second stream of its own, seeded with
(seed, i) too and living on the sampling device: image i is the same picture at any batch size with every
sampler (on a given device; CUDA and CPU generators give different numbers for that stream).
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.diffusion.noise import PerImageGenerators

STARTING_NOISE, STEP_NOISE, LABELS = 0, 1, 2  # stream kinds, mixed into the seed


def stream_seed(seed: int, index: int, kind: int = STARTING_NOISE) -> int:
    """A 63-bit seed for stream `kind` of image (or batch) `index` under user seed `seed`."""
    words = np.random.SeedSequence([int(seed), int(index), int(kind)]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31 ^ int(words[1])) & ((1 << 63) - 1)


def starting_noise(seed: int, start: int, count: int, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T for images start .. start+count-1: float32 (count, *shape) on the CPU, one stream per image."""
    noise = torch.empty((count, *shape), dtype=torch.float32)
    for row, index in enumerate(range(start, start + count)):
        generator = torch.Generator().manual_seed(stream_seed(seed, index))
        noise[row] = torch.randn(shape, generator=generator)
    return noise


def step_noise_generators(seed: int, start: int, count: int, device: torch.device | str) -> PerImageGenerators:
    """The per-step noise streams of images start .. start+count-1, on `device`, one per image."""
    return PerImageGenerators(torch.Generator(device=device).manual_seed(stream_seed(seed, index, STEP_NOISE))
                              for index in range(start, start + count))
