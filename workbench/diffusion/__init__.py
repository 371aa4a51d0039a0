"""The diffusion core: schedules, the forward process, parametrizations, losses and the sampler protocol.

Pure torch; no UI or engine imports. Public API (other layers import only these names):

    betas = build_schedule(cfg.schedule)                      # float64 (T,), validated
    diffusion = GaussianDiffusion.from_config(cfg).to(device)  # or GaussianDiffusion(betas, "eps")
    loss, t = diffusion.training_losses(model_fn, x0, generator=g, weighting="min-snr")
    sampler = build_sampler(cfg.sample)
    images = sample_images(model_fn, diffusion, sampler, (16, 1, 32, 32), steps=50, generator=g, device=device)
    rows = schedule_table(get_host(), 1000)                  # for `ddpm-workbench schedules`

Third-party samplers implement the `Sampler` protocol (workbench.diffusion.sampling explains it): they read
the public `diffusion.schedule` (a NoiseSchedule) in `set_timesteps(schedule, steps, device)` and own their
`step(index, x, denoise, generator)`, calling `denoise(x, t) -> pred_x0` as often as they need. A sampler
class marks this protocol with `calls_denoise = True`; one without the marker is run as before, through an
adapter: `set_timesteps(diffusion, ...)` and `step(index, x_t, pred_x0, generator)` with one network call.
"""

from workbench.diffusion.gaussian import GaussianDiffusion
from workbench.diffusion.noise import PerImageGenerators, randn
from workbench.diffusion.noise_schedule import NoiseSchedule, Posterior, posterior_coefficients
from workbench.diffusion.parametrization import PREDICTIONS, WEIGHTINGS
from workbench.diffusion.sampling import (
    Sampler,
    SamplerStep,
    build_sampler,
    dynamic_threshold_x0,
    make_denoiser,
    process_x0,
    sample_images,
)
from workbench.diffusion.schedule import (
    build_schedule,
    check_betas,
    rescale_zero_terminal_snr,
    schedule_table,
)

__all__ = [
    "GaussianDiffusion",
    "NoiseSchedule",
    "Posterior",
    "PREDICTIONS",
    "WEIGHTINGS",
    "Sampler",
    "SamplerStep",
    "build_sampler",
    "build_schedule",
    "check_betas",
    "dynamic_threshold_x0",
    "make_denoiser",
    "process_x0",
    "PerImageGenerators",
    "posterior_coefficients",
    "randn",
    "rescale_zero_terminal_snr",
    "sample_images",
    "schedule_table",
]
