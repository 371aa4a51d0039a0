"""The sampler protocol and the sampling loop every sampler shares.

A sampler is what `register_samplers` plugins provide: `factory(**params) -> Sampler`. It is deliberately
smaller than a diffusers scheduler (whose `set_timesteps`/`step` shape it follows), because the loop in
`sample_images` does the parts every sampler shares: it draws x_T, calls the network, turns its output (eps,
x0 or v) into a prediction of x0, clips or thresholds that, and reports progress. A sampler only chooses
its timesteps and moves x from one to the next given the predicted x0 ("data prediction"; eps, when it
needs it, is eps = (x_t - sqrt(alpha-bar_t) x0) / sqrt(1 - alpha-bar_t), re-derived from the processed x0
as improved-diffusion's DDIM does).

Rules a sampler follows so sampling stays fast and reproducible:
- compute everything that depends on the schedule in `set_timesteps` (in float64 from `diffusion.float64`,
  then cast once and moved to `device`), so `step` only indexes per-step tensors with the Python int `index`;
- never synchronize with the device in `step` (no `.item()`, no Python `if` on tensor values);
- draw noise only with `workbench.diffusion.randn(shape, generator, device)` (the generator may be a
  PerImageGenerators, one stream per image, which torch.randn cannot take);
- keep no tensor state across calls to `set_timesteps` (it starts a new trajectory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch

from workbench.diffusion import parametrization as param
from workbench.diffusion.noise import PerImageGenerators, randn
from workbench.errors import ConfigError, PluginError


@runtime_checkable
class Sampler(Protocol):
    """A reverse-process sampler (see this module's docstring for the rules it follows)."""

    def set_timesteps(self, diffusion, steps: int, device: torch.device) -> Sequence[int]:
        """Prepare a trajectory of `steps` steps for `diffusion` (a GaussianDiffusion) on `device`.

        Returns the model timesteps in the order they are used, as ints in 0..T-1 (usually descending and
        `steps` long). Step `index` of `step` refers to position `index` of this list."""
        ...

    def step(self, index: int, x_t: torch.Tensor, pred_x0: torch.Tensor,
             generator: torch.Generator | PerImageGenerators | None) -> torch.Tensor:
        """Move from x_t (at timestep number `index`) to the next timestep, given the network's
        prediction of x0 (already converted, clipped or thresholded). Returns the new x; after the last
        index, the sample."""
        ...


@dataclass(frozen=True)
class SamplerStep:
    """What a sampling callback receives at each step: `x_t` is the sample the network saw at timestep
    `t`, `pred_x0` its (clipped/thresholded) prediction of x0. Tensors are live: copy what you keep."""

    index: int  # 0-based step number
    total: int  # number of steps
    t: int  # model timestep, 0..T-1
    x_t: torch.Tensor
    pred_x0: torch.Tensor


def build_sampler(sample_section) -> Sampler:
    """The sampler a resolved `cfg.sample` selected, built by its plugin's factory with its validated .params
    (errors follow workbench.components' one policy)."""
    from workbench.components import call_factory, chosen, label

    component = chosen(sample_section)
    sampler = call_factory(component, section="sample", **sample_section.params)
    if not isinstance(sampler, Sampler):
        raise PluginError(f"{label(component)} built a {type(sampler).__name__}, which lacks set_timesteps() and "
                          "step() (see workbench.diffusion.Sampler)")
    if getattr(sampler, "name", None) is None:
        try:
            sampler.name = component.name
        except AttributeError:
            pass
    return sampler


def dynamic_threshold_x0(x0: torch.Tensor, percentile: float) -> torch.Tensor:
    """Saharia et al. 2022 (Imagen): s = max(quantile(|x0|, p) per sample, 1); x0 = clamp(x0, -s, s) / s."""
    flat = x0.reshape(x0.shape[0], -1).abs().float()
    rows = max(1, (1 << 24) // max(1, flat.shape[1]))  # torch.quantile refuses inputs over 2**24 elements
    s = torch.cat([torch.quantile(chunk, percentile, dim=1) for chunk in flat.split(rows)]).clamp_min(1.0)
    s = s.reshape((-1,) + (1,) * (x0.dim() - 1)).to(x0.dtype)
    return torch.minimum(torch.maximum(x0, -s), s) / s


def process_x0(x0: torch.Tensor, clip_x0: bool, dynamic_threshold: float) -> torch.Tensor:
    """Dynamic thresholding when its percentile is > 0 (it also bounds x0 to [-1, 1]), else clipping."""
    if dynamic_threshold > 0:
        return dynamic_threshold_x0(x0, dynamic_threshold)
    if clip_x0:
        return x0.clamp(-1.0, 1.0)
    return x0


def _sampler_label(sampler) -> str:
    return f"sampler {getattr(sampler, 'name', None) or type(sampler).__name__!r}"


def _checked_timesteps(sampler, timesteps, num_timesteps: int) -> list[int]:
    try:
        result = [int(t) for t in timesteps]
    except (TypeError, ValueError):
        result = None
    if not result or any(not 0 <= t < num_timesteps for t in result):
        raise PluginError(f"{_sampler_label(sampler)}: set_timesteps() must return a non-empty list of ints "
                          f"in 0..{num_timesteps - 1}, got {timesteps!r:.200}")
    return result


def sample_images(model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], diffusion, sampler: Sampler,
                  shape, *, steps: int, generator: torch.Generator | PerImageGenerators | None = None, device="cpu",
                  clip_x0: bool = True, dynamic_threshold: float = 0.0,
                  callback: Callable[[SamplerStep], None] | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """Draw samples of `shape` (B, C, H, W) with `sampler` in `steps` steps; float32, about [-1, 1].

    `model_fn(x_t, t)` gets a float32 batch and a LongTensor (B,) of timesteps and returns the network's
    output in `diffusion.prediction`. x_T is `noise` when given, else drawn with `generator` (see
    workbench.diffusion.randn), so the same generator seed gives the same samples. `callback(SamplerStep)`
    runs after the network at each step. No host-device synchronization happens inside the loop.
    """
    T = diffusion.num_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ConfigError(f"[sample] steps = {steps!r} must be an integer from 1 to the schedule's "
                          f"timesteps ({T}); lower sample.steps or raise schedule.timesteps")
    device = torch.device(device)
    shape = tuple(shape)
    timesteps = _checked_timesteps(sampler, sampler.set_timesteps(diffusion, steps, device), T)
    # Per-step sqrt(alpha-bar) and sqrt(1 - alpha-bar), from the float64 tables, cast once.
    index = torch.tensor(timesteps, dtype=torch.long)
    a_steps = diffusion.float64["sqrt_alphas_cumprod"][index].to(device, torch.float32)
    b_steps = diffusion.float64["sqrt_one_minus_alphas_cumprod"][index].to(device, torch.float32)
    with torch.no_grad():
        if noise is None:
            x = randn(shape, generator, device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, but samples of shape {shape} were asked for")
        else:
            x = noise.to(device, torch.float32)
        for i, t in enumerate(timesteps):
            t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
            output = model_fn(x, t_batch).float()
            pred_x0 = param.x0_from_output(diffusion.prediction, output, x, a_steps[i], b_steps[i])
            pred_x0 = process_x0(pred_x0, clip_x0, dynamic_threshold)
            if callback is not None:
                callback(SamplerStep(i, len(timesteps), t, x, pred_x0))
            x = sampler.step(i, x, pred_x0, generator)
    return x
