"""Noise schedules: build one from the config, validate it, rescale it to zero terminal SNR, tabulate all.

A schedule plugin is `factory(timesteps, **params) -> betas` (see workbench.plugin_host.hookspecs). The host
checks what it returns, in float64: a 1-D float tensor of length T with 0 < beta < 1 and alpha-bar strictly
decreasing. beta == 1 is allowed at the last index only, where it makes alpha-bar_T = 0 (the `jsd` schedule
and the zero-terminal-SNR rescale produce it); everything downstream handles alpha-bar = 0 without NaN.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from workbench.components import call_factory, chosen, label
from workbench.errors import PluginError, WorkbenchError


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2023, Algorithm 1: shift and scale sqrt(alpha-bar) so the last step has SNR 0."""
    betas = betas.to(torch.float64)
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * (first / (first - last))  # first value kept, last one becomes 0
    ab = sqrt_ab**2
    alphas = torch.cat([ab[:1], ab[1:] / ab[:-1]])
    return 1.0 - alphas


def check_betas(betas: Any, timesteps: int) -> tuple[torch.Tensor | None, str]:
    """(float64 betas, "") when valid, else (None, what is wrong, naming the first bad index)."""
    if isinstance(betas, np.ndarray):
        betas = torch.from_numpy(betas)
    if not isinstance(betas, torch.Tensor):
        return None, f"returned {type(betas).__name__}, not a torch.Tensor"
    if not betas.is_floating_point():
        return None, f"returned a {betas.dtype} tensor; betas must be floating point"
    if betas.dim() != 1 or betas.shape[0] != timesteps:
        return None, f"returned shape {tuple(betas.shape)}; expected ({timesteps},), one beta per timestep"
    betas = betas.detach().to("cpu", torch.float64).clone()
    values = betas.numpy()
    last = timesteps - 1
    bad = ~np.isfinite(values) | (values <= 0) | (values > 1)
    bad[:last] |= values[:last] >= 1
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        allowed = "(0, 1]" if i == last else "(0, 1) (beta = 1 is allowed only at the last index)"
        return None, f"beta[{i}] = {float(values[i])!r} is not in {allowed}"
    alpha_bar = np.cumprod(1.0 - values)
    # Strictly decreasing, and positive before the last index (only there may it be exactly 0).
    bad = np.zeros(timesteps, dtype=bool)
    bad[1:] |= alpha_bar[1:] >= alpha_bar[:-1]
    bad[:last] |= alpha_bar[:last] <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if i < last and alpha_bar[i] <= 0:
            return None, f"alpha-bar[{i}] underflowed to 0 before the last index (betas too large for this T)"
        where = (f"alpha-bar is not strictly decreasing at index {i} (alpha-bar[{i - 1}] = "
                 f"{float(alpha_bar[i - 1])!r}, alpha-bar[{i}] = {float(alpha_bar[i])!r})")
        if alpha_bar[i - 1] < np.finfo(np.float64).tiny:
            return None, f"{where}: it underflowed float64; use fewer timesteps or smaller betas"
        return None, f"{where}: beta[{i}] = {float(values[i])!r} is too small to change it"
    return betas, ""


def make_schedule(component, timesteps: int, params: Mapping[str, Any], *,
                  zero_terminal_snr: bool = False, section: str = "schedule") -> torch.Tensor:
    """Run one schedule component at `timesteps` with `params` already validated by its `resolve_params`
    and return checked float64 betas. Factory errors follow workbench.components' one policy."""
    where = f" at timesteps = {timesteps}"
    betas = call_factory(component, timesteps, section=section, at=where, **params)
    checked, problem = check_betas(betas, timesteps)
    if checked is None:
        raise PluginError(f"{label(component)}{where} is invalid: {problem}")
    if zero_terminal_snr:
        checked, problem = check_betas(rescale_zero_terminal_snr(checked), timesteps)
        if checked is None:
            raise PluginError(f"{label(component)}{where}, rescaled to zero terminal SNR, is invalid: {problem}")
    return checked


def build_schedule(schedule_section) -> torch.Tensor:
    """Float64 betas (T,) for a resolved `cfg.schedule` (its component, .timesteps, .zero_terminal_snr, .params)."""
    return make_schedule(chosen(schedule_section), int(schedule_section.timesteps), schedule_section.params,
                         zero_terminal_snr=bool(schedule_section.zero_terminal_snr))


def table_indices(timesteps: int) -> dict[str, int]:
    """The indices `ddpm-workbench schedules` shows: 0, T/4, T/2, 3T/4 and the last one (T-1)."""
    return {"0": 0, "T/4": timesteps // 4, "T/2": timesteps // 2, "3T/4": (3 * timesteps) // 4, "T": timesteps - 1}


def schedule_table(host, timesteps: int = 1000, *, zero_terminal_snr: bool = False,
                   params: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict]:
    """One row per installed schedule: name, plugin, paper, alpha-bar at 0, T/4, T/2, 3T/4, T (`alpha_bar`),
    all T alpha-bars (`alpha_bars`) and the terminal SNR; a schedule that fails at `timesteps` gets its error instead of numbers.

    `host` is the plugin host whose schedules are listed; `params` maps a schedule name to its validated
    parameters (the configured schedule's), others use their defaults."""
    rows = []
    for component in host.registries["schedule"]:
        row: dict[str, Any] = {"name": component.name, "plugin": component.plugin, "paper": component.reference,
                               "description": component.description, "timesteps": timesteps,
                               "zero_terminal_snr": zero_terminal_snr}
        try:
            chosen_params = component.resolve_params((params or {}).get(component.name) or {}, section="schedule")
            betas = make_schedule(component, timesteps, chosen_params, zero_terminal_snr=zero_terminal_snr)
        except WorkbenchError as exc:
            row.update({"alpha_bar": None, "alpha_bars": None, "terminal_snr": None, "error": str(exc)})
        else:
            alpha_bar = torch.cumprod(1.0 - betas, dim=0)
            row["alpha_bar"] = {label: float(alpha_bar[i]) for label, i in table_indices(timesteps).items()}
            row["alpha_bars"] = alpha_bar.tolist()  # all T values: what a custom schedule takes
            last = float(alpha_bar[-1])
            row["terminal_snr"] = last / (1.0 - last)
            row["error"] = None
        rows.append(row)
    return rows
