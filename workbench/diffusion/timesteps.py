"""Which timesteps a sampler visits when it takes fewer steps than the schedule's T.

Each function returns the model timesteps in the order they are used (descending), as Python ints, with the
exact integer arithmetic of the code it names, so results match those implementations step for step.
"""

from __future__ import annotations

import numpy as np

DDIM_SPACINGS = ("leading", "trailing", "linspace")


def respaced_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """improved-diffusion's space_timesteps(T, str(steps)) (Nichol & Dhariwal 2021): `steps` indices spread
    evenly over 0..T-1, both ends included, with the same accumulate-and-round arithmetic; descending."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"cannot take {steps} steps out of {num_timesteps}")
    stride = 1 if steps <= 1 else (num_timesteps - 1) / (steps - 1)
    taken, position = [], 0.0
    for _ in range(steps):
        taken.append(round(position))  # Python's round, as improved-diffusion
        position += stride
    return sorted(set(taken), reverse=True)


def ddim_timesteps(num_timesteps: int, steps: int, spacing: str = "leading") -> list[int]:
    """diffusers DDIMScheduler.set_timesteps (steps_offset = 0), spacings as in Lin et al. 2023, Table 2:
    leading: arange(steps) * (T // steps); trailing: round(arange(T, 0, -T/steps)) - 1;
    linspace: round(linspace(0, T - 1, steps)). Descending."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"cannot take {steps} steps out of {num_timesteps}")
    if spacing == "leading":
        step_ratio = num_timesteps // steps
        timesteps = (np.arange(0, steps) * step_ratio).round()[::-1].astype(np.int64)
    elif spacing == "trailing":
        step_ratio = num_timesteps / steps
        # arange's length can exceed `steps` by one through float rounding; diffusers relies on it not doing so.
        timesteps = np.round(np.arange(num_timesteps, 0, -step_ratio))[:steps].astype(np.int64) - 1
    elif spacing == "linspace":
        timesteps = np.linspace(0, num_timesteps - 1, steps).round()[::-1].astype(np.int64)
    else:
        raise ValueError(f"spacing {spacing!r} is not one of {', '.join(DDIM_SPACINGS)}")
    return [int(t) for t in timesteps]


def dpm_solver_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """diffusers DPMSolverMultistepScheduler.set_timesteps with its default timestep_spacing="linspace":
    round(linspace(0, T - 1, steps + 1)) reversed, without the final 0 (the last step goes to alpha-bar = 1)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"cannot take {steps} steps out of {num_timesteps}")
    timesteps = np.linspace(0, num_timesteps - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    return [int(t) for t in timesteps]
