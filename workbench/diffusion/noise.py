"""Gaussian noise drawn reproducibly from a torch.Generator, whatever device the generator lives on."""

from __future__ import annotations

import torch


def randn(shape, generator: torch.Generator | None, device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise on `device`. With a generator, the noise is drawn on the generator's own device
    (so a CPU generator gives the same numbers on every machine) and then moved to `device` if it differs."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return noise.to(device)
