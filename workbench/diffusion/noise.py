"""Gaussian noise drawn reproducibly from a torch.Generator, whatever device the generator lives on."""

from __future__ import annotations

from typing import Iterable

import torch


class PerImageGenerators:
    """One torch.Generator per image of a batch: row i of every draw comes from generator i alone.

    Pass it wherever a sampler takes a `generator`: `randn` draws each image's noise from that image's own
    stream, so image i's per-step noise does not depend on which batch it is in or on the batch's size.
    """

    def __init__(self, generators: Iterable[torch.Generator]):
        self.generators = list(generators)

    def __len__(self) -> int:
        return len(self.generators)

    @property
    def device(self) -> torch.device:
        return self.generators[0].device


def randn(shape, generator: torch.Generator | PerImageGenerators | None, device,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise on `device`. With a generator, the noise is drawn on the generator's own device
    (so a CPU generator gives the same numbers on every machine) and then moved to `device` if it differs.
    With PerImageGenerators, row i of the (batch, ...) shape comes from the batch's i-th generator."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(generator, PerImageGenerators):
        shape = tuple(shape)
        if not shape or shape[0] != len(generator):
            raise ValueError(f"noise of shape {shape} needs one generator per row; got {len(generator)} generators")
        rows = [torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype) for g in generator.generators]
        return torch.stack(rows).to(device)
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return noise.to(device)
