"""Forward-process strips: real images noised at chosen timesteps, for one schedule or several compared.

Ho et al. 2020 eq. 4: x_t = sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) eps, evaluated by each schedule's
`GaussianDiffusion.q_sample`. Image i uses the same eps at every timestep and under every schedule, so the
only thing that changes across a row or between blocks is the schedule.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from workbench.pictures import to_uint8
from workbench.sampling.layout import labelled_grid, stack, titled, upscale

# The fractions of T the default timesteps sit at: 0, 100, 250, 500, 750, 999 for T = 1000.
DEFAULT_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def default_timesteps(timesteps: int) -> list[int]:
    return sorted({min(timesteps - 1, round(f * timesteps)) for f in DEFAULT_FRACTIONS})


def noised_tiles(diffusion, images: torch.Tensor, noise: torch.Tensor, timesteps: Sequence[int]) -> torch.Tensor:
    """uint8 (n * (1 + len(timesteps)), C, H, W): per image, the clean image then x_t at each timestep."""
    x0 = images.float() / 127.5 - 1.0
    rows = []
    for i in range(x0.shape[0]):
        t = torch.tensor(list(timesteps), dtype=torch.long)
        x = x0[i:i + 1].expand(len(timesteps), *x0.shape[1:])
        eps = noise[i:i + 1].expand_as(x)
        rows.append(torch.cat([x0[i:i + 1], diffusion.q_sample(x, t, eps)]))
    return to_uint8(torch.cat(rows))


def forward_block(title: str, diffusion, images: torch.Tensor, noise: torch.Tensor, timesteps: Sequence[int],
                  scale: int = 1) -> np.ndarray:
    """One schedule's block: a titled grid with a row per image and columns x0, t=..., t=..."""
    tiles = upscale(noised_tiles(diffusion, images, noise, timesteps), scale)
    labels = ["x0"] + [f"t={t}" for t in timesteps]
    return titled(labelled_grid(tiles, len(labels), column_labels=labels), title)


def forward_strip(blocks: list[np.ndarray]) -> np.ndarray:
    """Schedule blocks one below the other."""
    return stack(blocks, axis=0, gap=6)
