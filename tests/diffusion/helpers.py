"""Shared pieces of the diffusion tests: config-like sections, a test plugin host, the optimal denoiser."""

from __future__ import annotations

import math
import torch

from workbench.config import Section
from workbench.plugin_host import PluginHost, get_host
from workbench.plugin_host.manager import PluginInfo


def schedule_section(name: str, timesteps: int = 1000, zero_terminal_snr: bool = False, host=None, **params):
    """A resolved cfg.schedule: the component looked up in `host` (default: the process-wide one) and its
    params validated, as workbench.config.resolve does."""
    return resolved_section("schedule", "schedule", name, host, params,
                            timesteps=timesteps, zero_terminal_snr=zero_terminal_snr)


def sample_section(name: str, host=None, **params):
    """A resolved cfg.sample (see schedule_section)."""
    return resolved_section("sample", "sampler", name, host, params)


def resolved_section(section: str, kind: str, name: str, host, params: dict, **values) -> Section:
    component = (host or get_host()).get(kind, name, section=section)
    return Section(section, {"name": name, **values}, component.resolve_params(params, section=section), component)


def host_with(plugin: object, name: str = "testplug") -> PluginHost:
    """The built-in plugins plus `plugin` (an object with @hookimpl functions), registered as `name`."""
    host = PluginHost(load_entry_points=False)
    failure = host.add_plugin(plugin, PluginInfo(name, "test-dist", "0.0", "tests"))
    assert failure is None, str(failure)
    return host


def linear_alpha_bars(timesteps: int = 1000) -> torch.Tensor:
    """alpha-bar of the DDPM linear schedule, computed here with math (independent of the code under test)."""
    values, product = [], 1.0
    for i in range(timesteps):
        product *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / (timesteps - 1))
        values.append(product)
    return torch.tensor(values, dtype=torch.float64)


def optimal_model(alpha_bars: torch.Tensor, mu: float, s: float, prediction: str):
    """The exact network for data x0 ~ N(mu, s^2 I): with a = sqrt(ab), b = sqrt(1 - ab) and x_t = a x0 + b eps,
    E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2), E[x0 | x_t] = mu + a s^2 (x_t - a mu) / (a^2 s^2 + b^2),
    E[v | x_t] = a E[eps | x_t] - b E[x0 | x_t] (v is linear in eps and x0).

    A fractional t (a float tensor) takes sigma = sqrt((1 - ab) / ab) interpolated linearly in log-sigma
    between the neighbouring table entries, then ab = 1 / (1 + sigma^2)."""

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = alpha_bars_at(alpha_bars.to(x_t.device), t).reshape(-1, *([1] * (x_t.dim() - 1)))
        a, b = ab.sqrt(), (1.0 - ab).sqrt()
        x = x_t.double()
        variance = a * a * s * s + b * b
        eps = b * (x - a * mu) / variance
        x0 = mu + a * s * s * (x - a * mu) / variance
        out = {"eps": eps, "x0": x0, "v": a * eps - b * x0}[prediction]
        return out.float()

    return model_fn


def alpha_bars_at(alpha_bars: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """alpha-bar at timesteps t: table entries for integer tensors, log-sigma interpolation for float ones."""
    if not t.is_floating_point():
        return alpha_bars[t]
    log_sigmas = 0.5 * (torch.log1p(-alpha_bars) - torch.log(alpha_bars))
    t = t.double()
    low = t.floor().clamp(0, len(alpha_bars) - 2).long()
    w = t - low
    log_sigma = (1 - w) * log_sigmas[low] + w * log_sigmas[low + 1]
    return 1.0 / (1.0 + torch.exp(2 * log_sigma))


def normal_quantiles(n: int) -> torch.Tensor:
    """n evenly spaced standard-normal quantiles: 'noise' with mean 0 and std ~1 and no sampling error."""
    from statistics import NormalDist

    nd = NormalDist()
    return torch.tensor([nd.inv_cdf((i + 0.5) / n) for i in range(n)], dtype=torch.float32)


def ddim_shrinkage(alpha_bars: torch.Tensor, timesteps: list[int]) -> float:
    """For x0 ~ N(0, 1) and the exact denoiser, each deterministic DDIM step rotates x by the change of
    angle theta = arccos(sqrt(alpha-bar)) and keeps cos(delta theta) of its spread (Cauchy-Schwarz), so the
    output std is the product of cos(delta theta) over the trajectory, which ends at alpha-bar = 1."""
    thetas = [math.acos(math.sqrt(float(alpha_bars[t]))) for t in timesteps] + [0.0]
    return math.prod(math.cos(b - a) for a, b in zip(thetas, thetas[1:]))
