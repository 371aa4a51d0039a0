"""The diffusion core: schedules, the forward process, parametrizations, losses and the sampler protocol.

Pure torch; no UI or engine imports. Public API (other layers import only these names):

    betas = build_schedule(cfg.schedule)                      # float64 (T,), validated
    diffusion = GaussianDiffusion.from_config(cfg).to(device)  # or GaussianDiffusion(betas, "eps")
    loss, t = diffusion.training_losses(model_fn, x0, generator=g, weighting="min-snr")
    sampler = build_sampler(cfg.sample)
    images = sample_images(model_fn, diffusion, sampler, (16, 1, 32, 32), steps=50, generator=g, device=device)
    rows = schedule_table(get_host(), 1000)                  # for `ddpm-workbench schedules`

Third-party samplers implement the `Sampler` protocol (workbench.diffusion.sampling explains it).
"""

from workbench.diffusion.gaussian import GaussianDiffusion
from workbench.diffusion.noise import PerImageGenerators, randn
from workbench.diffusion.parametrization import PREDICTIONS, WEIGHTINGS
from workbench.diffusion.sampling import (
    Sampler,
    SamplerStep,
    build_sampler,
    dynamic_threshold_x0,
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
    "PREDICTIONS",
    "WEIGHTINGS",
    "Sampler",
    "SamplerStep",
    "build_sampler",
    "build_schedule",
    "check_betas",
    "dynamic_threshold_x0",
    "process_x0",
    "PerImageGenerators",
    "randn",
    "rescale_zero_terminal_snr",
    "sample_images",
    "schedule_table",
]
