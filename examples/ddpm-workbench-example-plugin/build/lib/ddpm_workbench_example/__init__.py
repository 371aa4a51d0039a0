"""An example ddpm-workbench plugin: one extra noise schedule.

Install it next to ddpm-workbench (`pip install ./examples/ddpm-workbench-example-plugin`) and select it with
`--set schedule.name=polynomial` (its own keys: `power`, `beta_start`, `beta_end`).
"""

import torch

from workbench.plugin_host import hookimpl


def polynomial_betas(timesteps: int, power: float = 2.0, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """betas rising from beta_start to beta_end as (t / (T - 1)) ** power; power 1 is the DDPM linear schedule."""
    ramp = torch.linspace(0.0, 1.0, timesteps, dtype=torch.float64) ** power
    return beta_start + (beta_end - beta_start) * ramp


def validate(params: dict) -> None:
    if params["power"] <= 0:
        raise ValueError(f"power = {params['power']} must be > 0")
    if not 0 < params["beta_start"] < params["beta_end"] < 1:
        raise ValueError("need 0 < beta_start < beta_end < 1")


@hookimpl
def register_schedules(register):
    register(
        "polynomial",
        polynomial_betas,
        params={"power": 2.0, "beta_start": 1e-4, "beta_end": 0.02},
        description="betas rising polynomially from beta_start to beta_end",
        reference="example plugin (power 1 = Ho et al. 2020 linear)",
        validate=validate,
    )
