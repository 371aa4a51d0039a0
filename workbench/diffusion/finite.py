"""Samples are checked before anyone sees them: non-finite values (NaN, inf) from a sampler or a backbone
would otherwise be clamped into plausible-looking grey or black pictures and written as if they were fine."""

from __future__ import annotations

import torch

from workbench.errors import NonFiniteSamples


def require_finite(images: torch.Tensor, *, sampler, backbone: str, where: str = "") -> None:
    """Raise `NonFiniteSamples` naming the sampler and backbone when `images` hold a NaN or an inf.
    One reduction and one host sync: call it where the images go to the CPU anyway."""
    finite = torch.isfinite(images).flatten(1).all(dim=1)
    if bool(finite.all()):
        return
    name = getattr(sampler, "name", None) or type(sampler).__name__
    bad = int((~finite).sum())
    raise NonFiniteSamples(f"sampler {name!r} with backbone {backbone!r} produced non-finite values (NaN or inf) "
                           f"in {bad} of {images.shape[0]} images{where}")
