"""The sampler protocol, the denoise function samplers call, and the sampling loop every sampler shares.

A sampler is what `register_samplers` plugins provide: `factory(**params) -> Sampler`. It follows the shape
of a diffusers scheduler (`set_timesteps`, then `step` per timestep) but owns its step: `sample_images`
draws x_T, builds ONE denoise function and hands it to the sampler, which calls it as often as its method
needs (once for ddpm, ddim and dpm-solver++; twice for Heun), then reports progress.

    set_timesteps(schedule, steps, device) -> [t_0, t_1, ...]   model timesteps, ints in 0..T-1
    step(index, x, denoise, generator) -> x_next                  x is the sample at timestep number `index`

`schedule` is a `NoiseSchedule` (workbench.diffusion.noise_schedule): float64 CPU tables (alpha-bar, sigmas,
the posterior of any sub-chain) and the parametrization; never the diffusion's private tables.
`denoise(x, t) -> pred_x0` runs the network on x at timesteps t (a tensor (B,); long for table timesteps,
float for fractional ones, whose alpha-bar follows `NoiseSchedule.sigma_at`), turns its output (eps, x0 or
v) into a prediction of x0 and clips or thresholds it. Samplers that need eps re-derive it from the
processed x0: eps = (x_t - sqrt(alpha-bar_t) x0) / sqrt(1 - alpha-bar_t), as improved-diffusion's DDIM does.

Rules a sampler follows so sampling stays fast and reproducible:
- compute everything that depends on the schedule in `set_timesteps` (in float64 from the schedule, then
  cast once and moved to `device`), so `step` only indexes per-step tensors with the Python int `index`;
- never synchronize with the device in `step` (no `.item()`, no Python `if` on tensor values);
- draw noise only with `workbench.diffusion.randn(shape, generator, device)` (the generator may be a
  PerImageGenerators, one stream per image, which torch.randn cannot take);
- keep no tensor state across calls to `set_timesteps` (it starts a new trajectory);
- set the class attribute `calls_denoise = True`: it marks this protocol.

Samplers written for the earlier protocol (no `calls_denoise` marker) keep working through an adapter in
`sample_images`: their `set_timesteps(diffusion, steps, device)` gets the GaussianDiffusion and their
`step(index, x_t, pred_x0, generator)` gets the prediction of the one network call the loop makes.

The denoise function is built in one place, `make_denoiser`, around the model function, which is where
classifier-free guidance combines the conditional and unconditional outputs (workbench.sampling.model
`model_function`): before the conversion to x0, so no sampler has to cooperate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch

from workbench.diffusion import parametrization as param
from workbench.diffusion.noise import PerImageGenerators, randn
from workbench.diffusion.noise_schedule import NoiseSchedule
from workbench.errors import ConfigError, PluginError

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Generator = torch.Generator | PerImageGenerators | None


@runtime_checkable
class Sampler(Protocol):
    """A reverse-process sampler (see this module's docstring for the rules it follows). Its class attribute
    `calls_denoise = True` marks this protocol; without it the loop runs the sampler through its adapter for
    the earlier one (not declared here, so that isinstance() accepts both)."""

    def set_timesteps(self, schedule: NoiseSchedule, steps: int, device: torch.device) -> Sequence[int]:
        """Prepare a trajectory of `steps` steps on `device`.

        Returns the model timesteps in the order they are used, as ints in 0..T-1 (usually descending and
        `steps` long). Step `index` of `step` refers to position `index` of this list."""
        ...

    def step(self, index: int, x: torch.Tensor, denoise: Denoise, generator: Generator) -> torch.Tensor:
        """Move x (the sample at timestep number `index`) to the next timestep, calling `denoise(x, t)` for
        predictions of x0. Returns the new x; after the last index, the sample."""
        ...


@dataclass(frozen=True)
class SamplerStep:
    """What a sampling callback receives once per step: `x_t` is the sample the network saw first in the step
    (at timestep `t`), `pred_x0` its (clipped/thresholded) prediction of x0. Tensors are live: copy what you
    keep."""

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


def make_denoiser(model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                  device, *, clip_x0: bool = True, dynamic_threshold: float = 0.0) -> Denoise:
    """`denoise(x, t) -> pred_x0`: the network's output at (x, t), converted from `schedule.prediction` to x0,
    then clipped or thresholded (`process_x0`). The one place a network call becomes a prediction of x0; a
    guided model function (workbench.sampling.model) hands it the already combined output, so guidance is
    applied before the conversion, right for eps, x0 and v.

    t is a tensor (B,): long timesteps index the schedule's tables (cast once to float32 on `device`); float
    ones take sqrt(alpha-bar) = 1 / sqrt(1 + sigma^2) with sigma = `schedule.sigma_at(t)`. No host syncs."""
    device = torch.device(device)
    a_table = schedule.sqrt_alphas_cumprod.to(device, torch.float32)
    b_table = schedule.sqrt_one_minus_alphas_cumprod.to(device, torch.float32)
    log_sigmas = schedule.sigmas.log().to(device, torch.float32)
    last = schedule.num_timesteps - 1

    def coefficients(t: torch.Tensor, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
        if t.is_floating_point():
            low = t.floor().clamp(0, last - 1)
            w = (t - low).clamp(0, 1)
            low = low.long()
            log_sigma = torch.lerp(log_sigmas[low], log_sigmas[low + 1], w.float())
            a = torch.rsqrt(1.0 + torch.exp(2.0 * log_sigma))
            b = a * torch.exp(log_sigma)
        else:
            a, b = a_table[t], b_table[t]
        shape = (-1,) + (1,) * (ndim - 1)
        return a.reshape(shape), b.reshape(shape)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        output = model_fn(x, t).float()
        pred_x0 = param.x0_from_output(schedule.prediction, output, x, *coefficients(t, x.dim()))
        return process_x0(pred_x0, clip_x0, dynamic_threshold)

    return denoise


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


class _FirstCallRecorder:
    """Wraps `denoise` to keep the first (x, pred_x0) of each step, for the SamplerStep callback."""

    def __init__(self, denoise: Denoise):
        self.denoise = denoise
        self.seen: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        pred_x0 = self.denoise(x, t)
        if self.seen is None:
            self.seen = (x, pred_x0)
        return pred_x0


def _legacy_step(sampler, timestep: int):
    """The earlier protocol's step(index, x_t, pred_x0, generator), driven as step(index, x, denoise, generator)."""

    def step(index: int, x: torch.Tensor, denoise: Denoise, generator: Generator) -> torch.Tensor:
        t_batch = torch.full((x.shape[0],), timestep, dtype=torch.long, device=x.device)
        return sampler.step(index, x, denoise(x, t_batch), generator)
    return step


def sample_images(model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], diffusion, sampler: Sampler,
                  shape, *, steps: int, generator: Generator = None, device="cpu", clip_x0: bool = True,
                  dynamic_threshold: float = 0.0, callback: Callable[[SamplerStep], None] | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """Draw samples of `shape` (B, C, H, W) with `sampler` in `steps` steps; float32, about [-1, 1].

    `diffusion` is a GaussianDiffusion (or a NoiseSchedule). `model_fn(x_t, t)` gets a float32 batch and a
    tensor (B,) of timesteps and returns the network's output in the schedule's prediction. x_T is `noise`
    when given, else drawn with `generator` (see workbench.diffusion.randn), so the same generator seed gives
    the same samples. `callback(SamplerStep)` runs once per step, after it. No host-device synchronization
    happens inside the loop.
    """
    schedule: NoiseSchedule = diffusion if isinstance(diffusion, NoiseSchedule) else diffusion.schedule
    T = schedule.num_timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ConfigError(f"[sample] steps = {steps!r} must be an integer from 1 to the schedule's "
                          f"timesteps ({T}); lower sample.steps or raise schedule.timesteps")
    device = torch.device(device)
    shape = tuple(shape)
    calls_denoise = bool(getattr(sampler, "calls_denoise", False))
    prepared = sampler.set_timesteps(schedule if calls_denoise else diffusion, steps, device)
    timesteps = _checked_timesteps(sampler, prepared, T)
    denoise = _FirstCallRecorder(make_denoiser(model_fn, schedule, device, clip_x0=clip_x0,
                                               dynamic_threshold=dynamic_threshold))
    with torch.no_grad():
        if noise is None:
            x = randn(shape, generator, device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, but samples of shape {shape} were asked for")
        else:
            x = noise.to(device, torch.float32)
        for i, t in enumerate(timesteps):
            step = sampler.step if calls_denoise else _legacy_step(sampler, t)
            denoise.seen = None
            x_next = step(i, x, denoise, generator)
            if callback is not None:
                x_t, pred_x0 = denoise.seen if denoise.seen is not None else (x, x_next)
                callback(SamplerStep(i, len(timesteps), t, x_t, pred_x0))
            x = x_next
    return x
