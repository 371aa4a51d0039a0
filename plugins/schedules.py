"""Built-in noise schedules (placeholder: the diffusion-core work replaces this module)."""

import torch

from workbench.plugin_host import hookimpl


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. 2020: betas linear from 1e-4 to 0.02 (for T = 1000)."""
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


@hookimpl
def register_schedules(register):
    register("linear", linear_betas, params={"beta_start": 1e-4, "beta_end": 0.02},
             description="linear betas", reference="Ho et al. 2020")
